"""The cluster step survives SIGKILL: a process killed mid-clustering leaves its finished units as
checkpoints, and the next call computes only the units that were missing and writes byte-for-byte
the outputs of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.dedup.runs import ingest
from thresher.dedup import DedupConfig, cluster_table, signature_shard, write_sidecars
from thresher.dedup import checkpoint as checkpoint_module
from thresher.dedup.clustering import checkpoint_dir
from thresher.dedup.tables import EXACT_KEY, MINHASH_KEY, clusters_path, edges_path, exact_clusters_path, work_dir
from thresher.storage.run_dir import RunDir

CONFIG = DedupConfig(verify=True)  # verify adds the shingle-set and Jaccard units
BANDS = [f"band-{b:02d}" for b in range(14)]


def units(run: RunDir) -> list[str]:
    """The cluster step's units in the order it finishes them (shards in signature-file order)."""
    shards = sorted(shard_id for _, shard_id, _ in run.data_parts())
    return ["exact-groups", *BANDS, *(f"shingles-0-{s}" for s in shards), "jaccard", "components"]


# The victim kills itself with SIGKILL right after it marked `argv[2]` done: a real, uncatchable
# kill (no finally, no atexit) at a chosen point, so the test does not race the clustering.
VICTIM = """
import os, signal, sys
from thresher.dedup import checkpoint
from thresher.dedup import DedupConfig, cluster_table
from thresher.storage.run_dir import RunDir

finish = checkpoint.Checkpoints.finish

def finish_then_die(self, unit, stats):
    finish(self, unit, stats)
    if unit == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.Checkpoints.finish = finish_then_die
cluster_table(RunDir(sys.argv[1]), DedupConfig.model_validate_json(sys.argv[3]), "documents")
"""


def _signed(root, inputs) -> RunDir:
    run = ingest(root, inputs)
    for table, shard_id, _ in run.data_parts():
        signature_shard(run, CONFIG, table, shard_id)
    return run


def _output_bytes(run: RunDir) -> dict[str, bytes]:
    """The cluster step's tables and the sidecars, as the bytes on disk."""
    files = [edges_path(run, "documents"), exact_clusters_path(run, "documents"), clusters_path(run, "documents")]
    for _, shard_id, _ in run.data_parts():
        files += [run.score_part(EXACT_KEY, shard_id), run.score_part(MINHASH_KEY, shard_id)]
    return {str(f.relative_to(run.root)): f.read_bytes() for f in files}


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory) -> tuple[dict, dict[str, bytes]]:
    run = _signed(tmp_path_factory.mktemp("uninterrupted") / "run", inputs)
    stats = cluster_table(run, CONFIG, "documents")
    for table, shard_id, _ in run.data_parts():
        write_sidecars(run, CONFIG, table, shard_id)
    return stats, _output_bytes(run)


# kill after: the exact groups, band 6, the second shard's shingle sets (then resume the run from
# another directory: a run may be moved), the components
@pytest.mark.parametrize(("kill_at", "move"), [(0, False), (7, False), (16, True), (19, False)])
def test_sigkill_mid_clustering_resumes_from_finished_units(inputs, uninterrupted, tmp_path, monkeypatch,
                                                            kill_at, move):
    reference_stats, reference_bytes = uninterrupted
    run = _signed(tmp_path / "run", inputs)
    order = units(run)
    killed_after = order[kill_at]
    assert len(order) == 20 and reference_stats["checkpoints"] == {"reused": 0, "computed": len(order)}
    assert reference_stats["verify"]["edges_dropped"] > 0  # the verify units did real work

    victim = subprocess.run([sys.executable, "-c", VICTIM, str(run.root), killed_after, CONFIG.model_dump_json()],
                            capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stderr
    assert not clusters_path(run, "documents").exists()
    finished = order[: order.index(killed_after) + 1]
    directory = checkpoint_dir(work_dir(run, "documents"))
    assert sorted(p.stem for p in directory.glob("*.json")) == sorted(finished)
    if move:
        run = RunDir(shutil.move(run.root, tmp_path / "moved"))
        directory = checkpoint_dir(work_dir(run, "documents"))
    before = {p.name: os.stat(p).st_ino for p in directory.iterdir()}

    computed, reread = [], {}
    real_finish, real_unit = checkpoint_module.Checkpoints.finish, checkpoint_module.Checkpoints.unit

    def spy_finish(self, unit, stats):
        computed.append(unit)
        return real_finish(self, unit, stats)

    def spy_unit(self, unit, compute):
        path, stats = real_unit(self, unit, compute)
        if unit in finished:  # the checkpoint file that is used is the very one the victim wrote
            reread[unit] = os.stat(path).st_ino == before[path.name]
        return path, stats

    monkeypatch.setattr(checkpoint_module.Checkpoints, "finish", spy_finish)
    monkeypatch.setattr(checkpoint_module.Checkpoints, "unit", spy_unit)
    stats = cluster_table(run, CONFIG, "documents")
    for table, shard_id, _ in run.data_parts():
        write_sidecars(run, CONFIG, table, shard_id)

    assert computed == order[len(finished):]
    assert reread == dict.fromkeys(finished, True)
    assert stats["checkpoints"] == {"reused": len(finished), "computed": len(order) - len(finished)}
    for part in ("exact", "minhash", "candidates", "verify", "components"):
        ignore = {"seconds", "survivor_seconds"}
        assert ({k: v for k, v in stats[part].items() if k not in ignore}
                == {k: v for k, v in reference_stats[part].items() if k not in ignore}), part
    got = _output_bytes(run)
    assert got.keys() == reference_bytes.keys()
    for name, data in reference_bytes.items():
        assert got[name] == data, f"{name} differs from the uninterrupted run's"
    assert not work_dir(run, "documents").exists() and not list(run.root.rglob("*.tmp-*"))


def test_checkpoints_of_other_inputs_or_parameters_are_not_reused(inputs, uninterrupted, tmp_path):
    _, reference_bytes = uninterrupted
    run = _signed(tmp_path / "run", inputs)
    total = len(units(run))
    victim = subprocess.run([sys.executable, "-c", VICTIM, str(run.root), "band-03", CONFIG.model_dump_json()],
                            capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stderr
    directory = checkpoint_dir(work_dir(run, "documents"))
    marker = directory / "band-02.json"
    recorded = json.loads(marker.read_text())
    # a unit whose rows do not carry the key its marker names is not trusted
    (directory / "band-01.parquet").write_bytes((directory / "band-00.parquet").read_bytes())
    stats = cluster_table(run, CONFIG.model_copy(update={"threshold": 0.75}), "documents")
    assert stats["checkpoints"] == {"reused": 0, "computed": total}  # another cluster key
    assert recorded["cache_key"].endswith("#band-02")

    run = _signed(tmp_path / "again", inputs)
    subprocess.run([sys.executable, "-c", VICTIM, str(run.root), "band-03", CONFIG.model_dump_json()],
                   capture_output=True, text=True, timeout=300)
    directory = checkpoint_dir(work_dir(run, "documents"))
    (directory / "band-01.parquet").write_bytes((directory / "band-00.parquet").read_bytes())
    stats = cluster_table(run, CONFIG, "documents")
    assert stats["checkpoints"] == {"reused": 4, "computed": total - 4}  # band-01 redone
    for table, shard_id, _ in run.data_parts():
        write_sidecars(run, CONFIG, table, shard_id)
    assert _output_bytes(run) == reference_bytes
