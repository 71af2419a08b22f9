"""The `score` flow: every scorer over every shard, into versioned sidecar tables."""

from __future__ import annotations

from prefect import flow

from thresher.config import DEFAULT_SCORERS, ScorerSpec
from thresher.flows.artifacts import publish_score, score_summary
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, map_cached, sidecar_done
from thresher.flows.tasks import score_shard_once_task, score_shard_task
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import Scorer, scorer_key
from thresher.scorers.registry import build_scorer
from thresher.storage.catalog import build_catalog
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir


def _prepare(run: RunDir, scorers: list[Scorer], table: str | None = None) -> None:
    """Fail once, before any task starts: a missing model (`prepare`) or no shard of a scorer's table."""
    for scorer in scorers:
        scorer.prepare()
    tables = {t for t, _, _ in run.data_parts()}
    for scorer in scorers:
        wanted = table or scorer.table
        if not (tables if wanted is None else tables & {wanted}):
            raise ValueError(f"{run.root} has no {wanted or 'documents or instructions'} shards for "
                             f"{scorer_key(scorer)}: run `thresher ingest` first")


def score_every_shard(run: RunDir, scorers: list[Scorer], label: str, *, table: str | None = None,
                      task_=score_shard_task) -> list[dict]:
    """Map `task_` (the score task, or one with its signature) over the data shards each scorer reads
    (its `table`, or `table` when given; every table when neither is set), in the calling flow;
    the per-shard stats, scorer by scorer. Every scorer is prepared first, so a missing model fails
    once, before any task starts."""
    _prepare(run, scorers, table)
    stats = []
    for scorer in scorers:
        wanted = table or scorer.table
        parts = [(t, s) for t, s, _ in run.data_parts() if wanted in (None, t)]
        jobs = [Job((str(run.root), scorer, t, shard), score_cache_key(run, scorer, t, shard)) for t, shard in parts]
        stats += map_cached(run, task_, jobs, label=f"{label} {scorer_key(scorer)}",
                            done=sidecar_done(run, scorer_key(scorer), shard_arg=3))
    return stats


def score_every_shard_once(run: RunDir, scorers: list[Scorer], label: str) -> list[dict]:
    """`score_every_shard`, with each shard read once by every scorer that reads its table (one task
    per shard instead of one per scorer and shard); the per-scorer stats, sidecars and cache keys are
    the ones `score_every_shard` gives, so either resumes the other's work."""
    _prepare(run, scorers)
    jobs = []
    for table, shard, _ in run.data_parts():
        group = [s for s in scorers if s.table in (None, table)]
        if group:
            key = "+".join(score_cache_key(run, s, table, shard) for s in group)
            jobs.append(Job((str(run.root), group, table, shard), key))

    def done(job: Job, _result: dict) -> bool:
        _, group, table, shard = job.args
        return all(read_cache_key(run.score_part(scorer_key(s), shard)) == score_cache_key(run, s, table, shard)
                   for s in group)

    results = map_cached(run, score_shard_once_task, jobs, label=f"{label} (one read per shard)", done=done)
    stats = []
    for result in results:
        for part in result["parts"]:
            stats.append({**part, "skipped": True, "seconds": 0.0} if result.get("skipped") else part)
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
    summary = score_summary(score_every_shard_once(run, built, "score"))
    build_catalog(run)
    publish_score(run.root.name, summary)
    run.stage_finished("score", summary=summary)
    return {"run_dir": str(run.root), "scorers": summary}
