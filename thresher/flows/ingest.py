"""The `ingest` flow: read every input shard into the run directory."""

from __future__ import annotations

from prefect import flow
from prefect.futures import as_completed

from thresher.config import IngestConfig, InputSpec
from thresher.flows.artifacts import ingest_summary, publish_ingest
from thresher.flows.tasks import ingest_shard_task, result_of, run_result_storage
from thresher.progress import stage_progress
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
    task = ingest_shard_task.with_options(result_storage=run_result_storage(run))
    keys = [ingest_cache_key(shard, spec, ingest) for spec, shard in planned]
    stats: dict[str, dict] = {}
    with stage_progress("ingest", len(planned)) as bar:
        futures = {
            task.submit(str(run.root), shard, spec, ingest, key): (spec, shard, key)
            for (spec, shard), key in zip(planned, keys)
        }
        for future in as_completed(list(futures)):
            spec, shard, key = futures[future]
            result = result_of(future)
            if finished_stats(run, shard, key) is None:
                # A cached result whose files were deleted since: do the shard again.
                result = task.with_options(refresh_cache=True)(str(run.root), shard, spec, ingest, key)
            stats[shard.shard_id] = result
            bar.advance(result["rows_in"])
    ordered = [stats[shard.shard_id] for _, shard in planned]
    summary = ingest_summary(ordered)
    build_catalog(run)
    publish_ingest(run.root.name, ordered, summary)
    run.stage_finished("ingest", **{k: v for k, v in summary.items() if k != "seconds"})
    return {"run_dir": str(run.root), **summary, "shards_detail": ordered}
