"""The augment stage on real Alpaca seeds: one two-round run (conftest, fake models), then its rows,
lineage, operations, and a run killed mid-round and resumed; what the real models do, on the demo's
Evol-Instruct run and with the Qwen judge."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from tests.augment.conftest import CONFIG, FAKE_GENERATOR, FAKE_JUDGE
from tests.augment.helpers import read_dir
from tests.lm_models import QWEN
from thresher.augment.eliminate import ELIMINATION_REASONS, NO_INFORMATION_GAIN
from thresher.augment.operations import choose_operation
from thresher.augment.stage import augment
from thresher.augment.tables import attempts_dir, round_stats_path
from thresher.augment.templates import OPERATIONS, latest_version, load_evolve_template
from thresher.storage.run_dir import RunDir


def attempts_of(run: RunDir) -> list[dict]:
    return read_dir(attempts_dir(run), "root_id")


def test_a_round_produces_evolved_rows_and_every_elimination_has_a_reason(evolved):
    out = RunDir(evolved["output_run"])
    rows = attempts_of(out)
    assert evolved["seeds"] == 8 and len(rows) == 16 == evolved["attempts"]
    assert Counter(r["round"] for r in rows) == {1: 8, 2: 8}
    survivors = [r for r in rows if r["survived"]]
    eliminated = [r for r in rows if not r["survived"]]
    print("survivors", len(survivors), "eliminations", Counter(r["elimination_reason"] for r in eliminated))
    assert survivors, "no evolution survived two rounds"
    assert evolved["survived"] == len(survivors)
    for row in eliminated:
        assert row["elimination_reason"] in ELIMINATION_REASONS and row["elimination_detail"]
    for row in survivors:
        assert row["elimination_reason"] is None and row["response"] and row["evolved_instruction"]
        assert row["p_equal"] is None or row["p_equal"] < CONFIG.equal_threshold
    # Judged rows carry the judge's verdict; the judge eliminated exactly those at or above the threshold.
    for row in rows:
        if row["equality_method"] == "logprobs":
            assert 0.0 <= row["p_equal"] <= 1.0 and "Equal" in row["equality_raw"]
            assert (row["elimination_reason"] == NO_INFORMATION_GAIN) == (row["p_equal"] >= CONFIG.equal_threshold)
        # A response is generated only for evolutions that passed rules 1 and 4.
        if row["response"] is None:
            assert row["elimination_reason"] in ("no_information_gain", "copied_template_words")
    stats = json.loads(round_stats_path(out, 1).read_text())
    assert sum(stats["eliminated"].values()) + stats["survived"] == stats["attempts"] == 8
    assert sum(e["attempts"] for e in stats["by_operation"].values()) == 8


def test_lineage_is_complete(evolved, alpaca_source):
    out = RunDir(evolved["output_run"])
    rows = attempts_of(out)
    seeds = {r["root_id"]: r for r in read_dir(out.root / "augment" / "seeds", "root_id")}
    by_id = {r["attempt_id"]: r for r in rows}
    generator = rows[0]["model"]
    for row in rows:
        assert row["root_id"] in seeds and row["seed"] == CONFIG.seed
        assert row["model"] == generator and generator.startswith(f"fake:{FAKE_GENERATOR}:")
        assert (row["evolve_prompt_version"], row["equality_prompt_version"], row["respond_prompt_version"]) == (
            latest_version("evolve"), latest_version("equality"), latest_version("respond"))
        if row["parent_id"] == row["root_id"]:
            assert row["depth"] == 1
        else:  # the parent is an earlier survivor of the same root, and its text is what was evolved
            parent = by_id[row["parent_id"]]
            assert parent["survived"] and parent["root_id"] == row["root_id"] and parent["round"] < row["round"]
            assert row["parent_instruction"] == parent["evolved_instruction"] and row["depth"] == parent["depth"] + 1
    # Round 2 evolves each root's round-1 survivor, or its round-1 parent again when that attempt failed.
    first = {r["root_id"]: r for r in rows if r["round"] == 1}
    for row in (r for r in rows if r["round"] == 2):
        before = first[row["root_id"]]
        assert row["parent_id"] == (before["attempt_id"] if before["survived"] else before["parent_id"])
    # The survivors are the augmented run's instructions, with their lineage in meta_json and in a table.
    data = read_dir(out.table_dir("instructions"), "doc_id")
    lineage = {r["doc_id"]: r for r in read_dir(out.root / "augment" / "lineage", "doc_id")}
    assert sorted(r["doc_id"] for r in data) == sorted(r["attempt_id"] for r in rows if r["survived"])
    for record in data:
        attempt, meta = by_id[record["doc_id"]], json.loads(record["meta_json"])["augment"]
        assert record["instruction"] == attempt["evolved_instruction"] and record["output"] == attempt["response"]
        assert record["text"] == f"{record['instruction']}\n\n{record['output']}" and record["input"] == ""
        for key in ("parent_id", "root_id", "round", "depth", "operation", "operation_detail", "model", "seed",
                    "evolve_prompt_version"):
            assert meta[key] == attempt[key] == lineage[record["doc_id"]][key]
        assert meta["source_run"] == str(alpaca_source.root) == lineage[record["doc_id"]]["source_run"]
    manifest = out.read_manifest()
    assert manifest["stages"]["augment"]["status"] == "finished"
    assert manifest["recipe"]["augment"]["rounds"] == 2


def test_same_seed_same_operations(evolved):
    rows = attempts_of(RunDir(evolved["output_run"]))
    formats = load_evolve_template().formats("complicate_input")
    for row in rows:
        assert (row["operation"], row["operation_detail"]) == choose_operation(
            CONFIG.seed, row["root_id"], row["round"], CONFIG.operations, formats)
    ids = [f"{i:032x}" for i in range(3000)]
    weights = {op: 1.0 for op in OPERATIONS}
    drawn = [choose_operation(7, d, 1, weights, formats) for d in ids]
    # Order-independent and repeatable; another seed or round draws differently.
    assert [choose_operation(7, d, 1, weights, formats) for d in reversed(ids)] == drawn[::-1]
    assert [choose_operation(8, d, 1, weights, formats) for d in ids] != drawn
    assert [choose_operation(7, d, 2, weights, formats) for d in ids] != drawn
    counts = Counter(op for op, _ in drawn)
    assert set(counts) == set(OPERATIONS) and all(400 <= n <= 600 for n in counts.values())
    assert {d for op, d in drawn if op == "complicate_input"} == set(formats)
    assert all(d is None for op, d in drawn if op != "complicate_input")
    only_two = {"deepen": 3.0, "breadth": 1.0, "concretize": 0.0}
    picked = Counter(choose_operation(0, d, 1, only_two)[0] for d in ids)
    assert set(picked) == {"deepen", "breadth"} and 0.7 < picked["deepen"] / len(ids) < 0.8


def test_a_run_killed_mid_round_resumes_with_the_same_rows(evolved, tmp_path):
    from thresher.augment.stage import augment

    original = RunDir(evolved["output_run"])
    copy = RunDir(tmp_path / "resumed")
    shutil.copytree(original.root, copy.root)
    # The state a process leaves when it is killed while generating round 2's second batch: writes
    # are atomic, so that batch has no part, the round has no stats and no instructions part.
    (attempts_dir(copy) / "part-r02-b00001.parquet").unlink()
    round_stats_path(copy, 2).unlink()
    copy.table_part("instructions", "r02").unlink(missing_ok=True)

    class Killed(Exception):
        pass

    def killed_during_batch_1_of_round_2(round_, batch, n, rows, reused):
        if (round_, batch) == (2, 0):
            assert reused  # finished batches are read back, never generated again
            raise Killed

    with pytest.raises(Killed):
        augment(evolved["source_run"], CONFIG, copy.root, on_batch=killed_during_batch_1_of_round_2)
    assert sorted(p.name for p in attempts_dir(copy).glob("part-r02-*")) == ["part-r02-b00000.parquet"]
    assert not round_stats_path(copy, 2).exists()

    resumed = augment(evolved["source_run"], CONFIG, copy.root)
    r1, r2 = resumed["round_stats"]
    assert (r1["batches_reused"], r1["attempts_generated"]) == (2, 0)
    assert (r2["batches_reused"], r2["attempts_generated"]) == (1, 4)
    before, after = attempts_of(original), attempts_of(copy)
    assert len(before) == len(after) == 16
    for a, b in zip(before, after):
        p_a, p_b = a.pop("p_equal"), b.pop("p_equal")
        a.pop("equality_raw"), b.pop("equality_raw")
        assert a == b
        assert (p_a is None) == (p_b is None) and (p_a is None or abs(p_a - p_b) < 1e-3)
    assert read_dir(copy.table_dir("instructions"), "doc_id") == read_dir(original.table_dir("instructions"), "doc_id")
    # Nothing left to do: a third call generates nothing.
    again = augment(evolved["source_run"], CONFIG, copy.root)
    assert again["attempts_generated"] == 0 and again["batches_reused"] == 4


def test_real_models_evolve_and_the_judge_eliminates_at_its_threshold(demo_result):
    """SmolLM2 evolving and answering real instructions and Qwen judging information gain, read from the
    session's demo run (thresher.demo evolves a few judged instructions for 2 rounds with these models)."""
    from thresher.demo import DEMO_AUGMENT

    rows = attempts_of(RunDir(demo_result["augment"]["output_run"]))
    assert len(rows) == 2 * DEMO_AUGMENT.sample and {r["model"].split(":")[0] for r in rows} == {"transformers"}
    survivors = [r for r in rows if r["survived"]]
    assert survivors, "no evolution by the real generator survived two rounds"
    assert all(r["response"] and r["evolved_instruction"] != r["parent_instruction"] for r in survivors)
    for row in rows:
        if not row["survived"]:
            assert row["elimination_reason"] in ELIMINATION_REASONS and row["elimination_detail"]
    # Qwen has next-token log-probabilities, so "auto" judged every attempt that reached the judge by
    # them, and eliminated exactly those at or above the threshold.
    judged = [r for r in rows if r["equality_method"] not in (None, "identical")]
    assert judged and all(r["equality_method"] == "logprobs" for r in judged)
    for row in judged:
        assert 0.0 <= row["p_equal"] <= 1.0 and "Equal" in row["equality_raw"]
        assert (row["elimination_reason"] == NO_INFORMATION_GAIN) == (row["p_equal"] >= DEMO_AUGMENT.equal_threshold)


def test_equality_by_generation_on_a_real_judge(qwen_judge):
    """The fallback for backends without next-token log-probabilities: decode the verdict and parse it."""
    from thresher.augment.config import LMSpec
    from thresher.augment.evolve import Evolver

    evolver = Evolver(CONFIG.model_copy(update={"equality_mode": "generate", "judge": LMSpec(model=QWEN)}))
    pairs = [("Explain the concept of cash flow.", "Explain the concept of cash flow."),
             ("Explain the concept of cash flow.", "Write a haiku about the ocean at night, in French.")]
    verdicts = evolver.judge_equality(pairs)
    print("generated verdicts", verdicts)
    assert [method for _, method, _ in verdicts] == ["generate", "generate"]
    for p, _, raw in verdicts:
        assert raw.strip() and (p in (0.0, 1.0) or p is None)
    assert verdicts[0][0] == 1.0 and evolver.judge.model_id.startswith("transformers:qwen")
    assert QWEN in evolver.config.judge.model


def test_one_model_at_a_time_unloads_between_phases_and_changes_nothing(evolved, alpaca_source, models, tmp_path,
                                                                         monkeypatch):
    import thresher.augment.evolve as evolve

    released = []
    monkeypatch.setattr(evolve, "release_backend", lambda spec: released.append(spec.model))
    config = CONFIG.model_copy(update={"one_model_at_a_time": True})
    lean = augment(alpaca_source.root, config, tmp_path / "lean")
    batches = sum(r["batches"] for r in evolved["round_stats"])
    # Per batch: the generator goes before the judge loads, the judge before the responder (the generator) does.
    assert released == [FAKE_GENERATOR, FAKE_JUDGE] * batches
    keep = ("attempt_id", "evolved_instruction", "p_equal", "response", "survived", "elimination_reason")
    assert [{k: r[k] for k in keep} for r in attempts_of(RunDir(lean["output_run"]))] == \
        [{k: r[k] for k in keep} for r in attempts_of(RunDir(evolved["output_run"]))]
