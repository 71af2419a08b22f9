"""Composite scores on the demo run (real judge, distilled head and answers): the z-scored mean checked
against numpy on the run's own values, missing inputs, versioning, and learned weights that recover
a planted signal."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import copy_run
from thresher.judges.composite import CompositeConfig, CompositeInput
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

INPUTS = [
    CompositeInput(name="alpagasus", sql="judge_alpagasus_score"),
    CompositeInput(name="distilled", sql="distilled_judge_alpagasus_score"),
    CompositeInput(name="length", sql="ln(1 + length(output))"),
]


@pytest.fixture
def run(demo_run, tmp_path) -> RunDir:
    return RunDir(copy_run(demo_run.root, tmp_path / "run"))


def _raw_inputs(run: RunDir) -> dict[str, tuple[float | None, float | None, float]]:
    """doc_id -> (judge score, distilled score, log length), read straight from the Parquet files."""
    con = duckdb.connect()
    rows = con.execute(
        "SELECT i.doc_id, j.judge_alpagasus_score, d.distilled_judge_alpagasus_score, ln(1 + length(i.output)) "
        "FROM read_parquet(?) i LEFT JOIN read_parquet(?) j USING (doc_id) LEFT JOIN read_parquet(?) d USING (doc_id)",
        [str(run.root / "instructions" / "*.parquet"), str(run.root / "scores" / "judge_alpagasus@*" / "*.parquet"),
         str(run.root / "scores" / "distilled_judge_alpagasus@1" / "*.parquet")]).fetchall()
    return {r[0]: r[1:] for r in rows}


def _composite(run: RunDir, key: str) -> dict[str, tuple[float | None, int]]:
    name = key.partition("@")[0]
    table = pq.read_table(run.root / "scores" / key).to_pydict()  # the sidecar directory is one dataset
    return {d: (s, n) for d, s, n in zip(table["doc_id"], table[f"{name}_score"], table[f"{name}_inputs"])}


def test_zscore_composite_is_the_mean_of_z_scores(run):
    from thresher.flows.judges import composite_flow

    config = CompositeConfig(name="quality_mix", inputs=INPUTS)
    result = composite_flow(str(run.root), config)
    raw = _raw_inputs(run)
    # The demo judges a sample: a row without the judge's score has no composite (every input required).
    complete = sorted(d for d, v in raw.items() if None not in v)
    assert result["rows"] == len(raw) and result["scored"] == len(complete) > 0

    ids = sorted(raw)
    x = np.array([[np.nan if v is None else v for v in raw[d]] for d in ids], dtype=float)
    z = (x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0)  # each input over the whole table
    expected = dict(zip(ids, z.mean(axis=1)))
    written = _composite(run, "quality_mix@1")
    assert set(written) == set(ids)
    assert [written[d][0] for d in complete] == pytest.approx([expected[d] for d in complete], abs=1e-9)
    assert {written[d][1] for d in complete} == {3}
    assert all(written[d][0] is None and written[d][1] < 3 for d in ids if d not in complete)

    with open_catalog(run) as con:
        top = con.execute("SELECT doc_id FROM instructions_scored ORDER BY quality_mix_score DESC NULLS LAST "
                          "LIMIT 1").fetchall()
    assert top[0][0] == max(complete, key=expected.get)
    metadata = json.loads(pq.read_schema(next((run.root / "scores" / "quality_mix@1").glob("part-*"))).metadata[
        b"thresher.composite"])
    assert metadata["inputs"]["length"]["mean"] == pytest.approx(np.nanmean(x[:, 2]))

    # Same data, same definition: every shard comes from the cache, files untouched.
    part = next((run.root / "scores" / "quality_mix@1").glob("part-*.parquet"))
    before = part.stat().st_mtime_ns
    composite_flow(str(run.root), config)
    assert part.stat().st_mtime_ns == before


def test_missing_inputs_give_null_scores_not_invented_ones(run):
    from thresher.flows.judges import composite_flow

    # Every third row has no judge score (as with a sampled judge).
    gappy = CompositeInput(name="alpagasus",
                           sql="CASE WHEN hash(doc_id) % 3 = 0 THEN NULL ELSE judge_alpagasus_score END")
    length = CompositeInput(name="length", sql="ln(1 + length(output))", direction="lower")
    strict = composite_flow(str(run.root), CompositeConfig(name="strict", inputs=[gappy, length]))
    lenient = composite_flow(str(run.root), CompositeConfig(name="lenient", inputs=[gappy, length], min_inputs=1))
    strict_rows, lenient_rows = _composite(run, "strict@1"), _composite(run, "lenient@1")
    gaps = {d for d, (_, n) in strict_rows.items() if n == 1}
    assert gaps and strict["rows"] == lenient["rows"] == len(strict_rows)
    assert strict["scored"] == strict["rows"] - len(gaps) and lenient["scored"] == lenient["rows"]
    assert all(strict_rows[d][0] is None for d in gaps)
    # With one input left, the lenient score is that input's z-score: here minus the length's.
    raw = _raw_inputs(run)
    lengths = np.array([raw[d][2] for d in sorted(raw)])
    d = sorted(gaps)[0]
    assert lenient_rows[d][0] == pytest.approx(-(raw[d][2] - lengths.mean()) / lengths.std())


def test_a_changed_definition_needs_a_new_version(run):
    from thresher.flows.judges import composite_flow

    composite_flow(str(run.root), CompositeConfig(name="mix", inputs=INPUTS[:2]))
    with pytest.raises(ValueError, match="new version"):
        composite_flow(str(run.root), CompositeConfig(name="mix", inputs=INPUTS))
    composite_flow(str(run.root), CompositeConfig(name="mix", version="2", inputs=INPUTS))
    assert {p.name for p in (run.root / "scores").iterdir()} >= {"mix@1", "mix@2"}


def test_learned_weights_recover_a_planted_signal(run, tmp_path):
    from thresher.flows.judges import composite_flow

    # Labels planted on answer length alone (long = good): the fitted weights must put their weight
    # on the length input, positively, and the composite must rank held-out rows by it.
    raw = _raw_inputs(run)
    median = float(np.median([v[2] for v in raw.values()]))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"doc_id": d, "label": int(v[2] > median)}) + "\n" for d, v in raw.items()))
    config = CompositeConfig(name="learned", inputs=INPUTS, method="logistic", labels_path=str(labels), seed=3)
    fitted = composite_flow(str(run.root), config)["fitted"]
    weights = fitted["weights"]
    assert weights["length"] > 0 and weights["length"] > 3 * max(abs(weights["alpagasus"]), abs(weights["distilled"]))
    assert fitted["holdout"]["auc"] >= 0.9 and fitted["labelled"] == len(raw)
    written = _composite(run, "learned@1")
    complete = [d for d, v in raw.items() if None not in v]  # rows the demo's judge sampled
    assert complete and all(0 < written[d][0] < 1 for d in complete)
    longer, shorter = max(complete, key=lambda d: raw[d][2]), min(complete, key=lambda d: raw[d][2])
    assert written[longer][0] > 0.5 > written[shorter][0]


def test_config_rejects_bad_definitions():
    with pytest.raises(ValueError, match="logistic needs labels_path"):
        CompositeConfig(name="x", inputs=INPUTS, method="logistic")
    with pytest.raises(ValueError, match="composite input a"):
        CompositeConfig(name="x", inputs=[CompositeInput(name="a", sql="1); DROP TABLE t; SELECT (1")])
    with pytest.raises(ValueError, match="distinct"):
        CompositeConfig(name="x", inputs=[INPUTS[0], INPUTS[0]])
