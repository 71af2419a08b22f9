"""The `ingest` flow: read every input shard into the run directory."""

from __future__ import annotations

from prefect import flow

from thresher.config import IngestConfig, InputSpec
from thresher.flows.artifacts import ingest_summary, publish_ingest
from thresher.flows.mapping import Job, map_cached
from thresher.flows.tasks import ingest_shard_task
from thresher.storage.catalog import build_catalog
from thresher.storage.ingest import finished_stats, ingest_cache_key
from thresher.storage.readers import Shard, discover_shards
from thresher.storage.run_dir import RunDir


def plan_shards(inputs: list[InputSpec]) -> list[tuple[InputSpec, Shard]]:
    """Every shard of every input once, in a deterministic order."""
    seen: set[str] = set()
    planned = []
    for spec in inputs:
        for shard in discover_shards(spec):
            if shard.shard_id not in seen:
                seen.add(shard.shard_id)
                planned.append((spec, shard))
    return planned


@flow(name="thresher-ingest", log_prints=True)
def ingest_flow(run_dir: str, inputs: list[InputSpec], ingest: IngestConfig = IngestConfig(), seed: int = 0) -> dict:
    """Stream the inputs into `run_dir`: documents/instructions, quarantine, per-shard stats."""
    run = RunDir(run_dir)
    if not run.exists():
        run.init(seed=seed)
    planned = plan_shards(inputs)
    run.stage_started("ingest")
    jobs = [Job((str(run.root), shard, spec, ingest), ingest_cache_key(shard, spec, ingest)) for spec, shard in planned]
    ordered = map_cached(run, ingest_shard_task, jobs, label="ingest", rows=lambda r: r["rows_in"],
                         done=lambda job, _result: finished_stats(run, job.args[1], job.cache_key) is not None)
    summary = ingest_summary(ordered)
    build_catalog(run)
    publish_ingest(run.root.name, ordered, summary)
    run.stage_finished("ingest", **{k: v for k, v in summary.items() if k != "seconds"})
    return {"run_dir": str(run.root), **summary, "shards_detail": ordered}
