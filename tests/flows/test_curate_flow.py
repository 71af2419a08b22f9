"""The Prefect flows, run for real under one session-wide ephemeral Prefect API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.corpora import write_c4_shards
from tests.flows.runs import read_outputs, recipe_for
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_harness")

def test_curate_flow_ingests_scores_and_catalogs(web_curation):
    _, result = web_curation
    ingest = result["ingest"]
    assert ingest["shards"] == 5
    assert ingest["rows_in"] == ingest["rows_written"] + ingest["rows_quarantined"]
    assert ingest["quarantine_reasons"] == {"truncated_archive": 1}
    assert 200 < ingest["rows_written"] < 250  # 200 whole + the cut shard's surviving rows
    assert {s["scorer"] for s in result["score"]["scorers"]} == {"heuristics@1", "langid@1"}

    run = RunDir(result["run_dir"])
    manifest = run.read_manifest()
    assert {k: v["status"] for k, v in manifest["stages"].items()} == {
        "curate": "finished", "ingest": "finished", "score": "finished"}
    assert manifest["recipe"]["name"] == "web" and manifest["seed"] == 0
    with open_catalog(run) as con:
        rows = con.execute(
            "SELECT lang, count(*), min(gopher_word_count) > 0 FROM documents_scored GROUP BY lang ORDER BY 2 DESC"
        ).fetchall()
        assert rows[0][0] == "en" and rows[0][1] >= 0.95 * ingest["rows_written"]
        assert con.execute("SELECT count(DISTINCT doc_id) FROM documents_scored").fetchall() == [
            (ingest["rows_written"],)]
        assert con.execute("SELECT sum(rows_in) FROM ingest_stats").fetchall() == [(ingest["rows_in"],)]

    from prefect.artifacts import Artifact

    artifact = Artifact.get("web-ingest-summary")
    assert artifact is not None and "truncated_archive" in artifact.data


def test_rerun_skips_finished_shards_and_redoes_deleted_ones(web_curation):
    from thresher.flows.curate import curate_flow

    recipe, _ = web_curation
    run = RunDir(recipe.run_dir)
    before = read_outputs(run)

    again = curate_flow(recipe)
    assert again["ingest"]["shards_skipped"] == again["ingest"]["shards"] == 5
    assert all(s["shards_skipped"] == s["shards"] for s in again["score"]["scorers"])

    victim = sorted(run.table_dir("documents").glob("part-*.parquet"))[0]
    victim.unlink()
    (run.stats_path("ingest", victim.stem[len("part-"):])).unlink()
    third = curate_flow(recipe)
    assert third["ingest"]["shards_skipped"] == 4
    after = read_outputs(run)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].equals(after[name]), name


def _thresher(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "thresher.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _subprocess_env() -> dict:
    from prefect.settings import PREFECT_API_URL

    # The child talks to this session's ephemeral API instead of starting its own (~25 s).
    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}


@pytest.fixture(scope="module")
def kill_reference(sample_data, tmp_path_factory) -> tuple[Path, int, dict]:
    """(inputs, documents, outputs of an uninterrupted curate of them): computed once, compared with
    by every kill point below. The corpus is as small as keeps the victim busy after its first output
    file (a dozen shards: at least two dozen more tasks of 25-80 ms each)."""
    from thresher.flows.curate import curate_flow

    root = tmp_path_factory.mktemp("kill-curate")
    inputs = root / "inputs"
    total = write_c4_shards(sample_data, inputs, shards=12, copies=5)
    reference = recipe_for(root, inputs, "reference")
    curate_flow(reference)
    return inputs, total, read_outputs(RunDir(reference.run_dir))


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["documents", "scores/heuristics@1"])
def test_killed_curate_resumes_to_identical_outputs(tmp_path, kill_reference, kill_when):
    inputs, total, expected = kill_reference
    env = _subprocess_env()
    interrupted = recipe_for(tmp_path, inputs, "interrupted")
    (tmp_path / "interrupted.yaml").write_text(json.dumps(interrupted.model_dump(mode="json")))

    victim = _thresher("curate", str(tmp_path / "interrupted.yaml"), env=env)
    watched = Path(interrupted.run_dir) / kill_when
    deadline = time.monotonic() + 240
    while not any(watched.glob("part-*.parquet")):
        assert victim.poll() is None, "curate finished before it could be killed: make the corpus larger"
        assert time.monotonic() < deadline, "no output appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run = RunDir(interrupted.run_dir)
    assert run.read_manifest()["stages"].get("curate", {}).get("status") != "finished"

    resumed = _thresher("curate", str(tmp_path / "interrupted.yaml"), env=env)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert run.read_manifest()["stages"]["curate"]["status"] == "finished"

    got = read_outputs(run)
    assert expected.keys() == got.keys()
    for name in expected:
        assert expected[name].equals(got[name]), f"{name} differs after resume"
    documents = got["documents"].column("doc_id")
    assert len(documents) == total and len(set(documents.to_pylist())) == len(documents)
    assert not list(run.root.rglob("*.tmp-*"))
