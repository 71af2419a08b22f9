"""The `score` flow: every scorer over every shard, into versioned sidecar tables."""

from __future__ import annotations

from prefect import flow

from thresher.config import DEFAULT_SCORERS, ScorerSpec
from thresher.flows.artifacts import publish_score, score_summary
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, map_cached, sidecar_done
from thresher.flows.tasks import score_shard_task
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import Scorer, scorer_key
from thresher.scorers.registry import build_scorer
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


def score_every_shard(run: RunDir, scorers: list[Scorer], label: str, *, table: str | None = None,
                      task_=score_shard_task) -> list[dict]:
    """Map `task_` (the score task, or one with its signature) over the data shards each scorer reads
    (its `table`, or `table` when given; every table when neither is set), in the calling flow;
    the per-shard stats, scorer by scorer. Every scorer is prepared first, so a missing model fails
    once, before any task starts."""
    for scorer in scorers:
        scorer.prepare()
    stats = []
    for scorer in scorers:
        wanted = table or scorer.table
        parts = [(t, s) for t, s, _ in run.data_parts() if wanted in (None, t)]
        if not parts:
            raise ValueError(f"{run.root} has no {wanted or 'documents or instructions'} shards for "
                             f"{scorer_key(scorer)}: run `thresher ingest` first")
        jobs = [Job((str(run.root), scorer, t, shard), score_cache_key(run, scorer, t, shard)) for t, shard in parts]
        stats += map_cached(run, task_, jobs, label=f"{label} {scorer_key(scorer)}",
                            done=sidecar_done(run, scorer_key(scorer), shard_arg=3))
    return stats


@flow(name="thresher-score", log_prints=True)
@writes_run("run_dir")
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
