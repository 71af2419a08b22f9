"""The dedup flow, run for real under the session's ephemeral Prefect API: ingest, then dedup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import copy_run
from tests.corpora import write_c4_shards
from tests.dedup.runs import dedup_outputs
from thresher.config import InputSpec
from thresher.dedup import DedupConfig
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def c4_inputs(sample_data, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("c4-dedup")
    write_c4_shards(sample_data, directory, shards=3, copies=3)  # every document 3x, copies edited
    return directory


def _ingest(run_dir: Path, inputs: Path) -> None:
    from thresher.flows.ingest import ingest_flow

    ingest_flow(str(run_dir), [InputSpec(paths=[str(inputs)], format="c4")])


def test_dedup_flow_end_to_end_then_resumes(tmp_path, c4_inputs):
    from prefect.artifacts import Artifact

    from thresher.flows.dedup import dedup_flow

    run_dir = tmp_path / "c4run"
    _ingest(run_dir, c4_inputs)
    result = dedup_flow(str(run_dir), DedupConfig())
    docs = result["tables"]["documents"]
    assert result["shards"] == 3 and result["shards_skipped"] == 0
    assert docs["documents"] == 600
    # 200 originals with two edited copies each: most copies are found
    assert 250 < docs["minhash_duplicates"] <= 400 and docs["minhash_clusters"] > 150
    assert result["params"] == {"ngram": 5, "num_perm": 112, "seed": 1, "bands": 14, "rows": 8,
                                "normalizer": "1", "hash_scheme": "thresher-minhash/1"}

    run = RunDir(run_dir)
    stage = run.read_manifest()["stages"]["dedup"]
    assert stage["status"] == "finished" and stage["seed"] == 1
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*), sum(minhash_is_duplicate::INT), min(minhash_cluster_size) "
                           "FROM documents_scored").fetchall() == [(600, docs["minhash_duplicates"], 1)]
        sizes = con.execute("SELECT max(cluster_size) FROM dedup_clusters").fetchall()[0][0]
        assert sizes == docs["largest_cluster"] >= 3
        assert con.execute("SELECT count(*) FROM dedup_signatures").fetchall() == [(600,)]
    summary = Artifact.get("c4run-dedup-summary")
    assert summary is not None and "near duplicates" in summary.data
    assert Artifact.get("c4run-dedup-cluster-sizes") is not None
    before = dedup_outputs(run)

    again = dedup_flow(str(run_dir), DedupConfig())
    assert again["shards_skipped"] == again["sidecars_skipped"] == 3
    assert again["tables"]["documents"]["skipped"]

    # a deleted sidecar and band-key file are redone; everything else is served from the cache
    victim = run.data_parts()[0][1]
    (run.root / "scores" / "minhash_dedup@1" / f"part-{victim}.parquet").unlink()
    (run.root / "dedup" / "band_keys" / f"part-{victim}.parquet").unlink()
    third = dedup_flow(str(run_dir), DedupConfig())
    assert third["shards_skipped"] == 2 and third["sidecars_skipped"] == 2
    after = dedup_outputs(run)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].equals(after[name]), name


@pytest.mark.slow
def test_killed_dedup_resumes_to_identical_outputs(tmp_path, sample_data):
    from prefect.settings import PREFECT_API_URL

    from thresher.flows.dedup import dedup_flow

    inputs = tmp_path / "inputs"
    # A dozen shards keep the victim busy after its first signature file (two dozen more tasks of
    # 25-80 ms each, then the clustering), at a fifth of the documents that used to be here.
    write_c4_shards(sample_data, inputs, shards=12, copies=4)
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    _ingest(reference, inputs)
    copy_run(reference, interrupted)  # the same ingested run (a run holds only relative paths)
    dedup_flow(str(reference), DedupConfig())

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    code = ("import sys; from thresher.flows.dedup import dedup_flow; from thresher.dedup import DedupConfig; "
            "dedup_flow(sys.argv[1], DedupConfig())")
    victim = subprocess.Popen([sys.executable, "-c", code, str(interrupted)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = interrupted / "dedup" / "signatures"
    deadline = time.monotonic() + 120
    while not (watched.is_dir() and any(watched.glob("part-*.parquet"))):
        assert victim.poll() is None, victim.stdout.read()
        assert time.monotonic() < deadline, "no signature file appeared"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run = RunDir(interrupted)
    assert run.read_manifest()["stages"]["dedup"]["status"] == "running"
    assert len(list(watched.glob("part-*.parquet"))) < 12 or not (interrupted / "dedup" / "clusters").is_dir()

    result = dedup_flow(str(interrupted), DedupConfig())
    assert run.read_manifest()["stages"]["dedup"]["status"] == "finished"
    assert result["tables"]["documents"]["documents"] == 200 * 4
    expected, got = dedup_outputs(RunDir(reference)), dedup_outputs(run)
    assert expected.keys() == got.keys()
    for name in expected:
        assert expected[name].equals(got[name]), f"{name} differs after resume"
    assert not list(run.root.rglob("*.tmp-*"))


# Kills itself with SIGKILL right after the cluster step marked `argv[2]` done: a real kill of the
# flow process at a chosen point inside the global step, without racing it.
_KILLED_MID_CLUSTERING = """
import os, signal, sys
from thresher.dedup import checkpoint
from thresher.dedup import DedupConfig
from thresher.flows.dedup import dedup_flow

finish = checkpoint.Checkpoints.finish

def finish_then_die(self, unit, stats):
    finish(self, unit, stats)
    if unit == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.Checkpoints.finish = finish_then_die
dedup_flow(sys.argv[1], DedupConfig())
"""


@pytest.mark.slow
def test_flow_killed_mid_clustering_resumes_from_its_checkpoints(tmp_path, c4_inputs):
    from prefect.settings import PREFECT_API_URL

    from thresher.dedup.tables import work_dir
    from thresher.flows.dedup import dedup_flow

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    _ingest(reference, c4_inputs)
    copy_run(reference, interrupted)
    dedup_flow(str(reference), DedupConfig())

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    victim = subprocess.run([sys.executable, "-c", _KILLED_MID_CLUSTERING, str(interrupted), "band-05"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    run = RunDir(interrupted)
    assert run.read_manifest()["stages"]["dedup"]["status"] == "running"
    checkpoints = work_dir(run, "documents") / "checkpoints"
    assert len(list(checkpoints.glob("*.json"))) == 7  # exact groups and bands 0-5

    result = dedup_flow(str(interrupted), DedupConfig())
    assert result["tables"]["documents"]["cluster_units_reused"] == 7
    assert result["shards_skipped"] == 3  # the signatures were finished before the kill
    for directory in ("dedup/edges", "dedup/exact_clusters", "dedup/clusters", "scores/exact_dedup@1",
                      "scores/minhash_dedup@1"):
        files = sorted(p.name for p in (reference / directory).glob("part-*.parquet"))
        assert files and files == sorted(p.name for p in (interrupted / directory).glob("part-*.parquet"))
        for name in files:
            assert (reference / directory / name).read_bytes() == (interrupted / directory / name).read_bytes(), \
                f"{directory}/{name} differs after resume"
    assert not work_dir(run, "documents").exists() and not list(run.root.rglob("*.tmp-*"))
