"""One read per shard for every scorer (`score_shard_once`) against one scorer at a time
(`score_shard`): the same sidecars, the same cache keys, and each resumes the other's work."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from thresher.config import IngestConfig, InputSpec
from thresher.scorers.apply import score_shard, score_shard_once
from thresher.scorers.base import scorer_key
from thresher.scorers.registry import build_scorer
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir


@pytest.fixture
def c4_run(sample_data, tmp_path):
    """The C4 sample (200 real pages) ingested as two shards."""
    from thresher.flows.ingest import plan_shards
    from thresher.storage.ingest import ingest_shard

    lines = (sample_data / "c4_sample.jsonl").read_text(encoding="utf-8").splitlines()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i, half in enumerate((lines[:100], lines[100:])):
        (inputs / f"c4-{i}.jsonl").write_text("\n".join(half) + "\n", encoding="utf-8")
    run = RunDir(tmp_path / "run")
    run.init()
    for spec, shard in plan_shards([InputSpec(paths=[str(inputs)], format="jsonl")]):
        ingest_shard(run, shard, spec, IngestConfig())
    return run


def _sidecars(run: RunDir, scorers) -> dict:
    out = {}
    for scorer in scorers:
        for part in sorted((run.root / "scores" / scorer_key(scorer)).glob("part-*.parquet")):
            out[(scorer_key(scorer), part.name)] = (read_cache_key(part),
                                                    pq.read_table(part).replace_schema_metadata(None))
    return out


def test_one_read_gives_the_sidecars_of_one_scorer_at_a_time(c4_run, tmp_path):
    scorers = [build_scorer("heuristics", {}), build_scorer("langid", {})]
    parts = [(t, s) for t, s, _ in c4_run.data_parts()]
    assert len(parts) == 2
    stats = [score_shard_once(c4_run, scorers, t, s) for t, s in parts]
    assert all(not p["skipped"] and p["rows"] == 100 for shard in stats for p in shard)
    once = _sidecars(c4_run, scorers)

    separate = RunDir(tmp_path / "separate")
    import shutil

    shutil.copytree(c4_run.root, separate.root, ignore=shutil.ignore_patterns("scores"))
    for scorer in scorers:
        for t, s in parts:
            score_shard(separate, scorer, t, s)
    apart = _sidecars(separate, scorers)
    assert once.keys() == apart.keys() and len(once) == 4
    for key in once:
        assert once[key][0] == apart[key][0]  # the same cache key: either path resumes the other
        assert once[key][1].equals(apart[key][1]), key


def test_a_current_sidecar_is_not_scored_again(c4_run):
    heuristics, langid = build_scorer("heuristics", {}), build_scorer("langid", {})
    table, shard, _ = c4_run.data_parts()[0]
    score_shard(c4_run, heuristics, table, shard)
    done = c4_run.score_part(scorer_key(heuristics), shard)
    before = done.stat().st_mtime_ns
    stats = score_shard_once(c4_run, [heuristics, langid], table, shard)
    assert [(s["scorer"], s["skipped"]) for s in stats] == [(scorer_key(heuristics), True),
                                                             (scorer_key(langid), False)]
    assert done.stat().st_mtime_ns == before
    assert json.loads(json.dumps(stats))  # plain stats: they are stored as JSON task results


def test_a_failing_scorer_leaves_no_sidecar_behind(c4_run, monkeypatch):
    heuristics, langid = build_scorer("heuristics", {}), build_scorer("langid", {})
    table, shard, _ = c4_run.data_parts()[0]

    def broken(self, batch, stats=None):
        raise RuntimeError("model crashed")

    monkeypatch.setattr(type(langid), "score", broken)
    with pytest.raises(RuntimeError, match="model crashed"):
        score_shard_once(c4_run, [heuristics, langid], table, shard)
    # Every writer is atomic: neither scorer's part appears, so a re-run scores both.
    assert not c4_run.score_part(scorer_key(heuristics), shard).exists()
    assert not c4_run.score_part(scorer_key(langid), shard).exists()
