from __future__ import annotations

import json
import os
import pickle
import random
import statistics
import subprocess
import sys
from collections import Counter

import pyarrow as pa
import pytest

from thresher.scorers.base import Scorer, check_output, scorer_params_hash
from thresher.scorers.heuristics import HeuristicsScorer
from thresher.scorers.text_stats import count_letter_words, duplicates, ngram_repetition, words

TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)


def batch_of(texts, ids=None, text_type=pa.large_string()) -> pa.RecordBatch:
    ids = ids or [f"d{i}" for i in range(len(texts))]
    columns = {"doc_id": pa.array(ids, pa.string()), "text": pa.array(texts, text_type)}
    return pa.record_batch(columns)


def score_one(text: str, scorer: HeuristicsScorer | None = None) -> dict:
    scorer = scorer or HeuristicsScorer()
    batch = batch_of([text])
    result = check_output(scorer, batch, scorer.score(batch))
    return {k: v[0] for k, v in result.to_pydict().items()}


# --- tokenisation --------------------------------------------------------------------------


def test_word_tokenisation_rule():
    text = "Don't e-mail the U.S. office: 3.14, 1,000 and 10:30 or 24/7 a,b #tag ... → x_y ’quoted’"
    assert words(text) == [
        "Don't", "e-mail", "the", "U.S", "office", "3.14", "1,000", "and", "10:30", "or", "24/7",
        "a", "b", "tag", "x_y", "quoted",
    ]  # fmt: skip


def test_words_keep_combining_marks():
    # Python's \w alone would split these at every vowel sign, harakat or decomposed accent
    assert words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert words("العَرَبِيَّة لغة") == ["العَرَبِيَّة", "لغة"]
    assert words("e\u0301te\u0301 cafe\u0301") == ["e\u0301te\u0301", "cafe\u0301"]


def test_count_letter_words():
    tokens = words("Page 12 of 3,000: 4th_floor x2 2024 __ 10:30 ½ é")
    assert tokens == [
        "Page", "12", "of", "3,000", "4th_floor", "x2", "2024", "__", "10:30", "½", "é",
    ]  # fmt: skip
    # no letter: 12, 3,000, 2024, __, 10:30 (½ is a numeric word character, counted as a letter)
    assert count_letter_words(tokens) == 6
    assert count_letter_words([]) == 0


def test_duplicates_counts_repeats_not_first_occurrences():
    assert duplicates(["a", "bb", "a", "bb", "a", "c"]) == (3, 1 + 2 + 1)
    assert duplicates([]) == (0, 0)


# --- n-gram repetition against a brute-force reference --------------------------------------


def _covered(starts, n, tokens):
    covered = set()
    for i in starts:
        covered.update(range(i, i + n))
    return sum(len(tokens[j]) for j in covered)


def reference_repetition(tokens):
    """Every n-gram of every n, the obvious way: what the pruned version must reproduce."""
    total = sum(map(len, tokens))
    top, dup = [], []
    for n in (*TOP_NS, *DUP_NS):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if n in TOP_NS:
            counts = Counter(grams)
            best = max(counts.values(), default=0)
            if best < 2 or total == 0:
                top.append(0.0)
                continue
            longest = max(sum(map(len, g)) for g, c in counts.items() if c == best)
            winners = [g for g, c in counts.items() if c == best and sum(map(len, g)) == longest]
            starts = [i for i, g in enumerate(grams) if g == winners[0]]
            top.append(_covered(starts, n, tokens) / total)
        else:
            seen, starts = set(), []
            for i, g in enumerate(grams):
                if g in seen:
                    starts.append(i)
                seen.add(g)
            dup.append(_covered(starts, n, tokens) / total if total else 0.0)
    return top, dup


@pytest.mark.parametrize("seed", range(40))
def test_ngram_repetition_matches_brute_force(seed):
    rng = random.Random(seed)
    vocab = [rng.choice("abcdefgh") * rng.randint(1, 4) for _ in range(rng.randint(2, 12))]
    tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 120))]
    # splice in exact repeats of a passage, the structure the pruning has to get right
    if len(tokens) > 20:
        start = rng.randrange(len(tokens) - 15)
        passage = tokens[start : start + rng.randint(5, 15)]
        at = rng.randrange(len(tokens))
        tokens[at:at] = passage * rng.randint(1, 3)
    got_top, got_dup = ngram_repetition(tokens, TOP_NS, DUP_NS)
    want_top, want_dup = reference_repetition(tokens)
    assert got_top == pytest.approx(want_top)
    assert got_dup == pytest.approx(want_dup)


def test_ngram_repetition_hand_computed():
    passage = "one two three four five six seven eight nine ten".split()
    top, dup = ngram_repetition(passage * 2, TOP_NS, DUP_NS)
    assert dup == [0.5] * 6  # the second copy repeats the first, at every n
    # every 2/3/4-gram of the passage occurs twice: the longest wins ("seven eight",
    # "seven eight nine", "five six seven eight"), both copies of it out of 78 characters
    assert top == pytest.approx([20 / 78, 28 / 78, 34 / 78])

    # overlapping occurrences count each word once: "la" x6 has five copies of "la la"
    top, dup = ngram_repetition(["la"] * 6, TOP_NS, DUP_NS)
    assert top == [1.0, 1.0, 1.0]
    assert dup == [5 / 6, 0.0, 0.0, 0.0, 0.0, 0.0]  # 5-grams at 0 and 1; the repeat covers 1..5

    top, dup = ngram_repetition("a b c d e f g h i j k l".split(), TOP_NS, DUP_NS)
    assert top == [0.0] * 3 and dup == [0.0] * 6

    assert ngram_repetition([], TOP_NS, DUP_NS) == ([0.0] * 3, [0.0] * 6)


# --- each family by hand ---------------------------------------------------------------------


def test_gopher_quality_hand_computed():
    text = "The cat and the dog.\n• Item 42 ...\n• 2024 #tag"
    # words: The cat and the dog | Item 42 | 2024 tag  -> 9 words, 28 characters
    row = score_one(text)
    assert row["text_n_chars"] == len(text)
    assert row["text_n_lines"] == 3
    assert row["gopher_word_count"] == 9
    assert row["gopher_mean_word_length"] == pytest.approx(28 / 9)
    assert row["gopher_hash_word_ratio"] == pytest.approx(1 / 9)
    assert row["gopher_ellipsis_word_ratio"] == pytest.approx(1 / 9)
    assert row["gopher_symbol_word_ratio"] == pytest.approx(2 / 9)
    assert row["gopher_bullet_lines_ratio"] == pytest.approx(2 / 3)
    assert row["gopher_ellipsis_lines_ratio"] == pytest.approx(1 / 3)
    assert row["gopher_alpha_words_ratio"] == pytest.approx(7 / 9)  # not 42, 2024
    assert row["gopher_stop_word_count"] == 3  # The, and, the (case-insensitive)
    # the same text through the C4 and FineWeb lenses
    assert row["c4_lines_no_terminal_punct_frac"] == pytest.approx(2 / 3)  # "..." is no end
    assert row["c4_short_lines_frac"] == pytest.approx(2 / 3)  # two lines of two words
    assert row["c4_sentence_count"] == 1  # only the first line survives C4's line rules
    assert row["fineweb_line_punct_ratio"] == pytest.approx(2 / 3)  # "..." ends in "."
    assert row["fineweb_short_line_ratio"] == 1.0
    assert row["fineweb_list_ratio"] == pytest.approx(2 / 9)


def test_stop_words_parameter_is_lowercased_and_hashable():
    scorer = HeuristicsScorer(stop_words=["CAT", "Dog"])  # a list, as a YAML recipe gives it
    assert scorer.stop_words == ("cat", "dog")
    hash(scorer)
    assert score_one("The cat and the dog.", scorer)["gopher_stop_word_count"] == 2
    assert scorer_params_hash(scorer) != scorer_params_hash(HeuristicsScorer())


def test_repeated_lines_and_paragraphs():
    text = "alpha beta\ngamma delta\nalpha beta\ngamma delta"
    row = score_one(text)
    assert row["rep_dup_line_frac"] == 0.5  # 2 of 4 lines repeat an earlier one
    assert row["rep_dup_line_char_frac"] == pytest.approx(21 / 45)
    assert row["fineweb_char_dup_ratio"] == pytest.approx(21 / 42)  # newlines not counted
    assert row["rep_dup_para_frac"] == 0.0  # one paragraph
    # words: alpha beta gamma delta x2 = 38 characters
    # "gamma delta" x2: the longest of the three 2-grams that occur twice
    assert row["rep_top_2gram_char_frac"] == pytest.approx(20 / 38)
    assert row["rep_top_3gram_char_frac"] == pytest.approx(28 / 38)
    assert row["rep_top_4gram_char_frac"] == 1.0
    assert row["rep_dup_5gram_char_frac"] == 0.0

    text = "Para one.\n\nPara two.\n \nPara one."
    row = score_one(text)
    assert row["rep_dup_para_frac"] == pytest.approx(1 / 3)
    assert row["rep_dup_para_char_frac"] == pytest.approx(9 / len(text))
    assert row["rep_dup_line_frac"] == pytest.approx(1 / 3)  # blank lines are not lines here
    assert row["fineweb_short_line_ratio"] == 1.0  # but FineWeb counts them (5 lines, all short)
    assert row["text_n_lines"] == 5


def test_lines_are_compared_stripped_and_crlf_is_tolerated():
    row = score_one("Same line.\r\n  Same line.  \r\nOther line here.\r\n")
    assert row["rep_dup_line_frac"] == pytest.approx(1 / 3)
    assert row["fineweb_line_punct_ratio"] == pytest.approx(3 / 4)  # 3 of 4 lines; last is ""
    assert row["c4_lines_no_terminal_punct_frac"] == 0.0


def test_c4_lorem_ipsum_and_curly_braces():
    assert score_one("Lorem Ipsum dolor sit amet, consectetur.")["c4_has_lorem_ipsum"] is True
    assert score_one("Lorem is a name; ipsum is not.")["c4_has_lorem_ipsum"] is False
    assert score_one("function f() { return 1; }")["c4_has_curly_brace"] is True
    assert score_one("a closing } alone")["c4_has_curly_brace"] is True
    assert score_one("No braces (only parentheses) [and brackets].")["c4_has_curly_brace"] is False


def test_c4_javascript_policy_and_sentences():
    text = (
        "Please enable JavaScript to view this page.\n"
        "This site uses cookies. Read our Privacy Policy.\n"
        "First sentence here. Second one here! Third one?\n"
        "A fact with a citation here.[1]\n"
        "Trailing off into nothing here...\n"
        "two words."
    )
    row = score_one(text)
    assert row["c4_javascript_lines"] == 1
    assert row["c4_policy_lines"] == 1
    # kept: line 3 (three sentences) and line 4 (terminal once the citation is gone)
    assert row["c4_sentence_count"] == 4
    assert row["c4_lines_no_terminal_punct_frac"] == pytest.approx(1 / 6)
    assert row["c4_short_lines_frac"] == pytest.approx(1 / 6)


def test_c4_sentence_count_drops_lines_with_overlong_words():
    long_word = "x" * 1001
    assert score_one(f"A line with {long_word} in it.")["c4_sentence_count"] == 0
    assert score_one(f"A line with {long_word} in it.", HeuristicsScorer(max_word_chars=2000))[
        "c4_sentence_count"
    ] == 1


def test_empty_and_degenerate_texts_are_all_zero():
    scorer = HeuristicsScorer()
    texts = ["", "   ", "\n\n\n", "...", "#", "😀😀"]
    batch = batch_of(texts)
    result = check_output(scorer, batch, scorer.score(batch)).to_pydict()
    for name in result:
        if name.endswith(("_frac", "_ratio", "_length")):
            assert result[name][0] == 0.0, name
            if name != "fineweb_short_line_ratio":  # FineWeb counts blank lines as short lines
                assert result[name][1:3] == [0.0, 0.0], name
    assert result["fineweb_short_line_ratio"][1:3] == [1.0, 1.0]
    assert result["gopher_word_count"] == [0] * 6
    assert result["text_n_lines"] == [0, 1, 4, 1, 1, 1]
    assert result["gopher_hash_word_ratio"][4] == 0.0  # a hash but no word: 0, not a division error


# --- the contract ----------------------------------------------------------------------------


def test_contract_schema_order_and_types():
    scorer = HeuristicsScorer()
    assert isinstance(scorer, Scorer)
    schema = scorer.output_schema
    assert schema.field(0).name == "doc_id" and schema.field(0).type == pa.string()
    assert not schema.field(0).nullable
    names = schema.names[1:]
    assert len(set(names)) == len(names)
    assert all(n.startswith(("text_", "gopher_", "rep_", "c4_", "fineweb_")) for n in names)
    assert not any(schema.field(n).nullable for n in names)

    texts = ["Second doc here.", "", "First doc, longer than the second one."]
    ids = ["z", "a", "m"]
    for text_type in (pa.large_string(), pa.string()):
        batch = batch_of(texts, ids, text_type)
        result = check_output(scorer, batch, scorer.score(batch))
        assert result.column("doc_id").to_pylist() == ids
        assert result.column("text_n_chars").to_pylist() == [len(t) for t in texts]

    empty = batch_of([])
    assert check_output(scorer, empty, scorer.score(empty)).num_rows == 0

    nulls = pa.record_batch(
        {"doc_id": pa.array(["n"]), "text": pa.array([None], pa.large_string())}
    )
    assert scorer.score(nulls).column("text_n_chars").to_pylist() == [0]


def test_scorer_pickles_before_and_after_scoring():
    scorer = HeuristicsScorer(short_line_chars=40)
    assert pickle.loads(pickle.dumps(scorer)) == scorer
    scorer.score(batch_of(["Some text to score."]))
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone == scorer
    with pytest.raises(AttributeError):
        scorer.short_line_chars = 10  # frozen


# --- real data -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def c4_scores(sample_data):
    with open(sample_data / "c4_sample.jsonl", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    scorer = HeuristicsScorer()
    batch = batch_of(texts)
    return texts, check_output(scorer, batch, scorer.score(batch)).to_pydict()


def test_c4_sample_passes_the_rules_c4_applied(c4_scores):
    """C4's cleaning kept only lines ending in terminal punctuation and dropped pages with lorem
    ipsum, curly braces, javascript or policy lines: our signals must agree on every C4 page."""
    texts, scores = c4_scores
    assert len(texts) == 200
    assert set(scores["c4_lines_no_terminal_punct_frac"]) == {0.0}
    assert not any(scores["c4_has_lorem_ipsum"]) and not any(scores["c4_has_curly_brace"])
    assert set(scores["c4_javascript_lines"]) == {0} and set(scores["c4_policy_lines"]) == {0}
    assert set(scores["rep_dup_line_frac"]) == {0.0}


def test_c4_sample_mostly_passes_gopher_and_fineweb_rules(c4_scores):
    _, s = c4_scores
    rows = range(len(s["doc_id"]))
    fineweb = [
        s["fineweb_line_punct_ratio"][i] > 0.12
        and s["fineweb_short_line_ratio"][i] < 0.67
        and s["fineweb_char_dup_ratio"][i] < 0.01
        and s["fineweb_list_ratio"][i] <= 0.3
        for i in rows
    ]
    dup_limits = dict(zip(DUP_NS, (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)))
    repetition = [
        s["rep_top_2gram_char_frac"][i] <= 0.20
        and s["rep_top_3gram_char_frac"][i] <= 0.18
        and s["rep_top_4gram_char_frac"][i] <= 0.16
        and all(s[f"rep_dup_{n}gram_char_frac"][i] <= t for n, t in dup_limits.items())
        for i in rows
    ]
    quality = [
        50 <= s["gopher_word_count"][i]
        and 3 <= s["gopher_mean_word_length"][i] <= 10
        and s["gopher_alpha_words_ratio"][i] >= 0.8
        and s["gopher_stop_word_count"][i] >= 2
        for i in rows
    ]
    assert sum(fineweb) / len(fineweb) >= 0.95
    assert sum(repetition) / len(repetition) >= 0.85
    assert sum(quality) / len(quality) >= 0.8
    assert 4 <= statistics.median(s["gopher_mean_word_length"]) <= 6


def _junk_texts(c4_texts: list[str]) -> dict[str, str]:
    prose_line = max(c4_texts[0].split("\n"), key=len)
    return {
        "repeated_lines": "\n".join([prose_line] * 8 + c4_texts[1].split("\n")[:2]),
        "lorem": " ".join(["Lorem ipsum dolor sit amet, consectetur adipiscing elit."] * 12),
        "code": "\n".join(
            [
                "function add(a, b) {",
                "  var total = a + b;",
                "  if (total > 10) { console.log(total); }",
                "  return total;",
                "}",
            ]
            * 4
        ),
        "menu": "\n".join(["Home", "About us", "Products", "Contact", "Login", "Cart", "FAQ"] * 3),
    }


def test_junk_scores_worse_than_c4_prose(c4_scores):
    texts, c4 = c4_scores
    junk = _junk_texts(texts)
    scorer = HeuristicsScorer()
    batch = batch_of(list(junk.values()), list(junk))
    result = check_output(scorer, batch, scorer.score(batch)).to_pydict()
    j = {name: dict(zip(result["doc_id"], values)) for name, values in result.items()}

    def worse_than_all_c4(column: str, doc: str) -> bool:
        return j[column][doc] > max(c4[column])

    def worse_than_c4_decile(column: str, doc: str, higher_is_worse: bool = True) -> bool:
        ranked = sorted(c4[column])
        if higher_is_worse:
            return j[column][doc] > ranked[int(0.9 * len(ranked))]
        return j[column][doc] < ranked[int(0.1 * len(ranked))]

    assert worse_than_all_c4("rep_dup_line_frac", "repeated_lines")
    assert worse_than_all_c4("rep_dup_line_char_frac", "repeated_lines")
    assert worse_than_all_c4("rep_dup_10gram_char_frac", "repeated_lines")
    assert worse_than_all_c4("fineweb_char_dup_ratio", "repeated_lines")

    assert j["c4_has_lorem_ipsum"]["lorem"] and j["rep_top_4gram_char_frac"]["lorem"] > 0.5
    assert worse_than_c4_decile("rep_dup_5gram_char_frac", "lorem")

    assert j["c4_has_curly_brace"]["code"]
    assert worse_than_c4_decile("gopher_stop_word_count", "code", higher_is_worse=False)
    assert worse_than_c4_decile("c4_lines_no_terminal_punct_frac", "code")
    assert worse_than_c4_decile("fineweb_line_punct_ratio", "code", higher_is_worse=False)

    assert worse_than_all_c4("fineweb_short_line_ratio", "menu")
    assert worse_than_all_c4("c4_short_lines_frac", "menu")
    assert worse_than_all_c4("fineweb_list_ratio", "menu")
    assert j["gopher_stop_word_count"]["menu"] == 0


def test_scores_do_not_depend_on_the_hash_seed():
    """Tie-breaks and set iteration must not leak per-process string hashing (Python's, or the
    hash tables of Arrow and polars) into scores."""
    rng = random.Random(7)
    texts = [
        " ".join(rng.choice(["la", "le", "li", "lo", "lu", "lalala"]) for _ in range(300))
        for _ in range(5)
    ] + ["Same line.\nOther line.\nSame line.\n\nSame line.\n\nOther line."]
    code = (
        "import json, sys\n"
        "import pyarrow as pa\n"
        "from thresher.scorers.heuristics import HeuristicsScorer\n"
        "texts = json.load(sys.stdin)\n"
        "batch = pa.record_batch({'doc_id': [str(i) for i in range(len(texts))], 'text': texts})\n"
        "print(json.dumps(HeuristicsScorer().score(batch).to_pylist()))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(texts),
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    here = HeuristicsScorer().score(batch_of(texts, [str(i) for i in range(len(texts))])).to_pylist()
    assert json.loads(outputs.pop()) == json.loads(json.dumps(here))
