"""The judge and calibration flows, and the `thresher judge` CLI, on a small real run. These tests
are about orchestration, caching and outputs, so every judge runs on the fake backend
(tests/fake_backend.py): deterministic, varied scores, no weights to load."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from thresher.config import IngestConfig, InputSpec, ScorerSpec
from thresher.judges.metrics import roc_auc
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_for_cli", "fake_lm")

FAKE = {"backend": "fake", "model": "judge-flow"}
JUDGES = [
    ScorerSpec(name="judge_alpagasus", params={**FAKE, "max_input_tokens": 48}),
    ScorerSpec(name="judge_edu", params={**FAKE, "max_input_tokens": 96}),
    ScorerSpec(name="ifd", params={**FAKE, "max_answer_tokens": 32, "max_question_tokens": 32}),
]


@pytest.fixture(scope="module")
def run(sample_data, tmp_path_factory, fake_lm):
    from thresher.flows.ingest import plan_shards
    from thresher.storage.ingest import ingest_shard

    root = tmp_path_factory.mktemp("judge-run")
    records = json.loads((sample_data / "alpaca_sample.json").read_text())
    (root / "alpaca.json").write_text(json.dumps(records[:12]))
    docs = (sample_data / "c4_sample.jsonl").read_text().splitlines()[:5]
    (root / "web.jsonl").write_text("\n".join(docs) + "\n")
    run = RunDir(root / "run")
    run.init()
    specs = [InputSpec(paths=[str(root / "alpaca.json")], format="alpaca"),
             InputSpec(paths=[str(root / "web.jsonl")], format="jsonl")]
    for spec, shard in plan_shards(specs):
        ingest_shard(run, shard, spec, IngestConfig())
    return run


def test_judge_flow_writes_sidecars_and_reruns_from_cache(run):
    from thresher.flows.judges import judge_flow

    first = {s["judge"]: s for s in judge_flow(str(run.root), JUDGES)["judges"]}
    alpagasus = first[next(k for k in first if k.startswith("judge_alpagasus@"))]
    assert (alpagasus["table"], alpagasus["rows"], alpagasus["model_rows"]) == ("instructions", 12, 12)
    edu = first[next(k for k in first if k.startswith("judge_edu@"))]
    assert (edu["table"], edu["rows"], edu["model_rows"]) == ("documents", 5, 5)
    assert first["ifd@1"]["rows"] == 12

    again = judge_flow(str(run.root), JUDGES)["judges"]
    assert all(s["shards_skipped"] == s["shards"] and s["model_rows"] == 0 for s in again)

    # A lost sidecar is rebuilt from the judgment cache without the model.
    for part in (run.root / "scores" / alpagasus["judge"]).glob("part-*.parquet"):
        part.unlink()
    rebuilt = {s["judge"]: s for s in judge_flow(str(run.root), JUDGES[:1])["judges"]}[alpagasus["judge"]]
    assert (rebuilt["model_rows"], rebuilt["cache_hits"]) == (0, 12)

    con = open_catalog(run)
    try:
        scored, nulls = con.execute(
            "SELECT count(judge_alpagasus_score), count(*) - count(ifd_score) FROM instructions_scored").fetchall()[0]
        assert (scored, nulls) == (12, 0)
        assert con.execute("SELECT count(judge_edu_score) FROM documents_scored").fetchall()[0][0] == 5
    finally:
        con.close()


def test_calibration_flow_writes_three_tables(run):
    from thresher.flows.judges import calibrate_flow

    result = calibrate_flow(str(run.root), JUDGES[0], "alpagasus-degraded", degraded=4, seed=1)
    calibration = result["calibration"]
    assert (calibration.n, calibration.n_scored) == (8, 8) and calibration.model_id.startswith("fake:judge-flow")
    assert sum(n for _, _, n in calibration.confusion) == 8
    metrics = pq.read_table(run.root / "judge_calibration" / "metrics" / "alpagasus-degraded.parquet").to_pylist()
    assert metrics[0]["auc"] == pytest.approx(calibration.auc) and metrics[0]["judge"] == "judge_alpagasus"
    rows = pq.read_table(run.root / "judge_calibration" / "rows" / "alpagasus-degraded.parquet").to_pylist()
    assert sorted(r["kind"] for r in rows).count("real") == 4 and all(r["score"] is not None for r in rows)
    # The metrics are those of the written rows: AUC and the class means, recomputed here.
    assert calibration.auc == pytest.approx(roc_auc([r["score"] for r in rows], [r["label"] for r in rows]))
    positive = [r["score"] for r in rows if r["label"] == 1]
    assert metrics[0]["mean_score_positive"] == pytest.approx(sum(positive) / len(positive))
    assert pq.read_table(run.root / "judge_calibration" / "confusion" / "alpagasus-degraded.parquet").num_rows >= 1


def test_calibration_against_a_label_file(run, tmp_path):
    from thresher.flows.judges import calibrate_flow

    con = open_catalog(run)
    try:
        ids = [r[0] for r in con.execute("SELECT doc_id FROM instructions ORDER BY doc_id LIMIT 6").fetchall()]
    finally:
        con.close()
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"doc_id": d, "label": i % 3 + 1}) + "\n" for i, d in enumerate(ids)))
    result = calibrate_flow(str(run.root), JUDGES[0], "alpagasus-labels", labels_path=str(labels), sample=6)
    c = result["calibration"]
    assert c.n == 6 and c.positive_threshold == 2.0 and "labels.jsonl" in c.reference


def test_cli(run, sample_data):
    from thresher.cli.judges import app

    runner = CliRunner()
    listed = runner.invoke(app, ["prompts"])
    assert listed.exit_code == 0 and "alpagasus" in listed.output and "ultrafeedback" in listed.output
    options = ["--backend", "fake", "--model", FAKE["model"], "-o", "max_input_tokens=48"]
    again = runner.invoke(app, ["run", str(run.root), "-j", "judge_alpagasus", *options])
    assert again.exit_code == 0, again.output
    assert "judge_alpagasus@" in again.output
    bad = runner.invoke(app, ["run", str(run.root), "-j", "judge_nonsense"])
    assert bad.exit_code == 2 and "unknown judge" in bad.output
    neither = runner.invoke(app, ["calibrate", str(run.root)])
    assert neither.exit_code == 2 and "--labels FILE or --degraded N" in neither.output
    attacked = runner.invoke(app, ["injection", str(sample_data / "alpaca_sample.json"), "-j", "judge_alpagasus",
                                   "--n", "2", *options])
    assert attacked.exit_code == 0, attacked.output
    table = attacked.output
    for attack in ("ignore", "fake_score", "role_play", "plain_role", "close_block"):
        assert f"| 1 | False | {attack} | 2 |" in table and f"| 2 | True | {attack} | 2 |" in table


def test_sampled_judge_marks_unjudged_rows(run):
    from thresher.flows.judges import judge_flow
    from thresher.judges.base import in_sample

    spec = ScorerSpec(name="judge_alpagasus", params={**JUDGES[0].params, "sample_fraction": 0.5, "sample_seed": 7})
    summary = judge_flow(str(run.root), [spec])["judges"][0]
    con = open_catalog(run)
    try:
        rows = con.execute("SELECT doc_id, judge_alpagasus_score, judge_alpagasus_parse_error "
                           "FROM instructions_scored ORDER BY doc_id").fetchall()
    finally:
        con.close()
    chosen = in_sample([r[0] for r in rows], 0.5, 7)
    assert 0 < sum(chosen) < len(rows)  # a real sample of the 12 rows, not all or none
    assert summary["not_sampled"] == chosen.count(False)
    assert summary["model_rows"] + summary["cache_hits"] == sum(chosen)  # earlier tests cached some
    for (_, score, error), keep in zip(rows, chosen):
        assert (score is not None, error) == ((True, None) if keep else (False, "not_sampled"))
    # The same seed picks the same rows in another process order; another seed picks others.
    assert in_sample([r[0] for r in rows], 0.5, 7) == chosen
    assert in_sample([f"doc-{i}" for i in range(10_000)], 0.5, 8).count(True) == pytest.approx(5_000, abs=250)
