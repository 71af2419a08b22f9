"""Thin Prefect tasks over shards shared by several flows. Each returns a small stats dict, never
data; `thresher.flows.mapping` maps them with their explicit cache keys."""

from __future__ import annotations

from thresher.config import IngestConfig, InputSpec
from thresher.flows.mapping import cached_task
from thresher.scorers.apply import score_shard, score_shard_once
from thresher.scorers.base import Scorer
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import Shard
from thresher.storage.run_dir import RunDir


@cached_task(name="ingest-shard", task_run_name="ingest {shard.shard_id}")
def ingest_shard_task(run_root: str, shard: Shard, spec: InputSpec, ingest: IngestConfig, cache_key: str) -> dict:
    stats = ingest_shard(RunDir(run_root), shard, spec, ingest)
    if stats["cache_key"] != cache_key:
        raise RuntimeError(f"cache key drift for {shard.path}: {stats['cache_key']} != {cache_key}")
    return stats


@cached_task(name="score-shard", task_run_name="{table}/{shard_id}")
def score_shard_task(run_root: str, scorer: Scorer, table: str, shard_id: str, cache_key: str) -> dict:
    return score_shard(RunDir(run_root), scorer, table, shard_id)


@cached_task(name="score-shard-once", task_run_name="{table}/{shard_id}")
def score_shard_once_task(run_root: str, scorers: list[Scorer], table: str, shard_id: str, cache_key: str) -> dict:
    parts = score_shard_once(RunDir(run_root), scorers, table, shard_id)
    return {"rows": parts[0]["rows"] if parts else 0, "parts": parts}
