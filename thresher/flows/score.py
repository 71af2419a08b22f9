"""The `score` flow: every scorer over every shard, into versioned sidecar tables."""

from __future__ import annotations

from prefect import flow
from prefect.futures import as_completed

from thresher.config import DEFAULT_SCORERS, ScorerSpec
from thresher.flows.artifacts import publish_score, score_summary
from thresher.flows.tasks import result_of, run_result_storage, score_shard_task
from thresher.progress import stage_progress
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import Scorer, scorer_key
from thresher.scorers.registry import build_scorer
from thresher.storage.catalog import build_catalog
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir


def score_every_shard(run: RunDir, scorers: list[Scorer], label: str) -> list[dict]:
    """Map a score task over every data shard for each scorer, in the calling flow; returns the
    per-shard stats. A cached shard whose sidecar has since gone is scored again."""
    parts = run.data_parts()
    task = score_shard_task.with_options(result_storage=run_result_storage(run))
    stats = []
    for scorer in scorers:
        with stage_progress(f"{label} {scorer_key(scorer)}", len(parts)) as bar:
            futures = {}
            for table, shard_id, _ in parts:
                key = score_cache_key(run, scorer, table, shard_id)
                futures[task.submit(str(run.root), scorer, table, shard_id, key)] = (table, shard_id, key)
            for future in as_completed(list(futures)):
                table, shard_id, key = futures[future]
                result = result_of(future)
                if read_cache_key(run.score_part(scorer_key(scorer), shard_id)) != key:
                    result = task.with_options(refresh_cache=True)(str(run.root), scorer, table, shard_id, key)
                stats.append(result)
                bar.advance(result["rows"])
    return stats


@flow(name="thresher-score", log_prints=True)
def score_flow(run_dir: str, scorers: list[ScorerSpec] | None = None) -> dict:
    """Score every documents/instructions shard of `run_dir` with each scorer."""
    if scorers is None:
        scorers = list(DEFAULT_SCORERS)
    run = RunDir(run_dir)
    parts = run.data_parts()
    if not parts:
        raise ValueError(f"{run.root} has no documents or instructions to score: run `thresher ingest` first")
    built = [build_scorer(spec.name, spec.params) for spec in scorers]
    run.stage_started("score", scorers=[scorer_key(s) for s in built])
    summary = score_summary(score_every_shard(run, built, "score"))
    build_catalog(run)
    publish_score(run.root.name, summary)
    run.stage_finished("score", summary=summary)
    return {"run_dir": str(run.root), "scorers": summary}
