"""The agreement harness (thresher.judges.agreement): the shipped preference pairs and their fixed
split, the arithmetic (ties and unjudged pairs count one half, nothing leaves the denominator), the
conversation shown to judges, and `evaluate` over a fake judge."""

from __future__ import annotations

import pytest

from thresher.judges.agreement import (
    AgreementConfig,
    PreferencePair,
    assign_splits,
    conversation_tail,
    convert_oasst_trees,
    convert_sharegpt_pairs,
    evaluate,
    format_table,
    is_length_matched,
    length_outcomes,
    load_pairs,
    pair_id,
    pair_outcomes,
    select,
)


@pytest.fixture(scope="module")
def pairs(sample_data):
    return load_pairs(sample_data / "preferences" / "dpo_en.jsonl")


def record(user: str, chosen: str, rejected: str, system: str | None = None) -> dict:
    turns = ([{"from": "system", "value": system}] if system else []) + [{"from": "human", "value": user}]
    return {"conversations": turns, "chosen": {"from": "gpt", "value": chosen},
            "rejected": {"from": "gpt", "value": rejected}}


def test_shipped_pairs_are_whole_unique_and_split_as_recorded(pairs):
    """295 pairs: the 300 records of dpo_en_demo.json less 5 exact duplicates (tests/data/README.md)."""
    assert len(pairs) == 295 and len({p.id for p in pairs}) == 295
    for p in pairs:
        assert p.id == pair_id(p.conversation, p.chosen, p.rejected)  # content unchanged since conversion
        assert p.conversation[-1][0] == "user" and p.chosen != p.rejected
    assert assign_splits([p.id for p in pairs]) == {p.id: p.split for p in pairs}
    assert len(select(pairs, "tune")) == 147 and len(select(pairs, "heldout")) == 148
    # "The longer reply wins" on the whole file: chosen is the longer one in 130 of 295 pairs, and
    # one pair's replies have the same length (a tie, one half).
    assert sum(length_outcomes(pairs)) == 130.5
    matched = select(pairs, "heldout_matched")
    assert matched and all(p.split == "heldout" and is_length_matched(p.chosen, p.rejected) for p in matched)


def test_conversion_counts_what_it_rejects():
    good = record("Name a colour.", "Red.", "Bananas.", system="Be brief.")
    no_user = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
               "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}
    pairs, info = convert_sharegpt_pairs([good, good, no_user, record("q", "same", "same"), {"chosen": 1}])
    assert len(pairs) == 1 and pairs[0].conversation == (("system", "Be brief."), ("user", "Name a colour."))
    assert info["rejected"] == {"duplicate": 1, "not_ending_with_user": 1, "empty_or_equal_replies": 1,
                                "malformed": 1}
    assert info["records"] == 5 == info["kept"] + sum(info["rejected"].values())


def test_split_is_seeded_and_halves():
    ids = [f"dpo-{i:04d}" for i in range(101)]
    a, b = assign_splits(ids, seed=15), assign_splits(ids, seed=16)
    assert list(a.values()).count("tune") == 50 and a == assign_splits(list(reversed(ids)), seed=15)
    assert a != b


def test_outcomes_count_ties_and_missing_as_half():
    assert pair_outcomes([2.0, 1.0, 3.0, None, float("nan")], [1.0, 2.0, 3.0, 1.0, 0.0]) == [1, 0, 0.5, 0.5, 0.5]
    assert is_length_matched("a" * 100, "b" * 120) and not is_length_matched("a" * 100, "b" * 121)


def test_long_conversations_keep_the_turn_being_answered():
    turns = (("system", "Be kind."), ("user", "x" * 900), ("assistant", "y" * 900), ("user", "What now?"))
    text = conversation_tail(turns, 1000)
    assert text.startswith("[2 earlier turn(s) omitted]") and text.endswith("User: What now?")
    assert "y" * 900 in text and "x" * 10 not in text
    assert conversation_tail((("user", "Hi there"),), 1000) == "Hi there"
    cut = conversation_tail((("user", "z" * 50 + "END"),), 20)
    assert cut.endswith("END") and len(cut) <= 23


def test_evaluate_counts_every_pair(fake_lm, pairs):
    config = AgreementConfig(name="fake askllm", kind="pointwise", judge="judge_askllm",
                             params={"backend": "fake", "model": "agreement-eval"})
    result = evaluate(config, pairs, ["heldout", "heldout_matched"], limit=6)
    heldout, matched = result.sets
    assert heldout.n == 6 and matched.n == 6
    union = {p.id for p in select(pairs, "heldout")[:6]} | {p.id for p in select(pairs, "heldout_matched")[:6]}
    assert result.judgments == 2 * len(union)
    assert 0 <= heldout.agreement <= 1 and heldout.length_baseline == pytest.approx(
        sum(length_outcomes(select(pairs, "heldout")[:6])) / 6)
    length = evaluate(AgreementConfig(name="length", kind="length"), pairs, ["all"])
    assert length.sets[0].agreement == length.sets[0].length_baseline == pytest.approx(130.5 / 295)
    table = format_table([length, result])
    assert table.count("\n") == 3 and "fake askllm" in table


def test_evaluate_pairwise_reports_position_bias(fake_lm, pairs):
    config = AgreementConfig(name="fake pairwise", kind="pairwise", params={"backend": "fake", "model": "agreement-pw"})
    result = evaluate(config, pairs, ["tune"], limit=4)
    [s] = result.sets
    assert s.n == 4 and result.judgments == 8
    assert s.first_position is not None and 0 <= s.first_position <= 1 and 0 <= s.order_flips <= 1


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError):
        AgreementConfig(name="x", kind="length", weights=[1])
    assert isinstance(PreferencePair.from_json({"id": "a", "split": "tune", "chosen": "c", "rejected": "r",
                                                "conversation": [{"role": "user", "content": "q"}]}),
                      PreferencePair)


def test_shipped_oasst_pairs_are_whole_and_split_as_recorded(sample_data):
    """114 English pairs (human best vs worst ranked reply) from OpenAssistant oasst2 trees
    (tests/data/README.md); people preferred the longer reply in 79 of them."""
    pairs = load_pairs(sample_data / "preferences" / "oasst2_en.jsonl")
    assert len(pairs) == 114 and len({p.id for p in pairs}) == 114
    for p in pairs:
        assert p.id == pair_id(p.conversation, p.chosen, p.rejected) and p.conversation[-1][0] == "user"
    assert assign_splits([p.id for p in pairs]) == {p.id: p.split for p in pairs}
    assert len(select(pairs, "tune")) == 57 and sum(length_outcomes(pairs)) == 79
    assert any(len(p.conversation) > 1 for p in pairs)  # follow-up turns keep their history


def _message(role: str, text: str, rank: int | None = None, lang: str = "en", replies=(), deleted=False) -> dict:
    return {"role": role, "text": text, "rank": rank, "lang": lang, "replies": list(replies), "deleted": deleted}


def test_oasst_conversion_takes_best_against_worst_at_every_ranked_turn():
    follow_up = _message("prompter", "And in French?", replies=[
        _message("assistant", "Rouge.", rank=0), _message("assistant", "Red.", rank=1)])
    tree = {"prompt": _message("prompter", "Name a colour.", replies=[
        _message("assistant", "Red.", rank=0, replies=[follow_up]),
        _message("assistant", "Blue, I think.", rank=1),
        _message("assistant", "Bananas.", rank=2),
        _message("assistant", "Gone.", rank=None, deleted=True)])}
    spanish = {"prompt": _message("prompter", "Un color.", lang="es", replies=[
        _message("assistant", "Rojo.", rank=0), _message("assistant", "Azul.", rank=1)])}
    pairs, info = convert_oasst_trees([tree, tree, spanish, {"prompt": "not a message"}])
    assert [(p.conversation, p.chosen, p.rejected) for p in pairs] == [
        ((("user", "Name a colour."),), "Red.", "Bananas."),
        ((("user", "Name a colour."), ("assistant", "Red."), ("user", "And in French?")), "Rouge.", "Red.")]
    assert info["rejected"] == {"duplicate": 2, "malformed": 1} and info["kept"] == 2
