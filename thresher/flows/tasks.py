"""Thin Prefect tasks over shards. Each returns a small stats dict, never data.

Caching: Prefect's default policy hashes a task's inputs and source, not the content of the files
a path points to, so every task takes an explicit `cache_key` (shard content fingerprint +
stage@version + parameters hash) and persists its result under the run directory. The flows
re-check that a cached shard's outputs still exist and refresh the cache where they do not.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from thresher.config import IngestConfig, InputSpec
from thresher.scorers.apply import score_shard
from thresher.scorers.base import Scorer
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import Shard
from thresher.storage.run_dir import RunDir


def _explicit_cache_key(context, parameters: dict) -> str:
    return parameters["cache_key"]


def run_result_storage(run: RunDir) -> Path:
    """Task results live inside the run, so one run's cache can never vouch for another's files.

    A Path is Prefect's local-filesystem storage that needs no saved block."""
    return Path(run.root) / ".prefect-results"


@task(name="ingest-shard", cache_key_fn=_explicit_cache_key, persist_result=True,
      task_run_name="ingest {shard.shard_id}")
def ingest_shard_task(run_root: str, shard: Shard, spec: InputSpec, ingest: IngestConfig, cache_key: str) -> dict:
    stats = ingest_shard(RunDir(run_root), shard, spec, ingest)
    if stats["cache_key"] != cache_key:
        raise RuntimeError(f"cache key drift for {shard.path}: {stats['cache_key']} != {cache_key}")
    return stats


@task(name="score-shard", cache_key_fn=_explicit_cache_key, persist_result=True,
      task_run_name="{table}/{shard_id}")
def score_shard_task(run_root: str, scorer: Scorer, table: str, shard_id: str, cache_key: str) -> dict:
    return score_shard(RunDir(run_root), scorer, table, shard_id)


def result_of(future) -> dict:
    """A task's stats; a result served from Prefect's cache is reported as skipped and free."""
    result = future.result()
    if future.state.name == "Cached":
        return {**result, "skipped": True, "seconds": 0.0}
    return result
