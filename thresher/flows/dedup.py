"""The `dedup` flow: exact and MinHash-LSH near-duplicate detection over a run's shards.

    signatures  one task per shard       dedup/signatures/, dedup/band_keys/
    cluster     one task per data table  dedup/edges/, dedup/exact_clusters/, dedup/clusters/
    sidecars    one task per shard       scores/exact_dedup@1/, scores/minhash_dedup@1/

Tasks are thin wrappers over `thresher.dedup.stage`; each carries an explicit cache key (shard
content + stage version + parameter hash, and for the cluster step the keys of every shard it
reads) with results persisted inside the run, and the flow re-checks that a cached task's files
still carry its key before trusting it. The cluster tasks run one table at a time: each may use
the whole DuckDB memory limit. A cluster task is one global step, so it checkpoints inside
(`thresher.dedup.clustering`): a run killed mid-clustering resumes at the first unfinished unit
(exact groups, LSH band, verified shard, components) instead of from scratch.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from thresher.dedup.config import DedupConfig
from thresher.dedup.index import signature_cache_key, write_params
from thresher.dedup.stage import (
    STAGE,
    ClusterOutputs,
    cluster_cache_key,
    cluster_table,
    data_tables,
    sidecar_cache_key,
    signature_shard,
    write_sidecars,
)
from thresher.dedup.tables import EXACT_KEY, MINHASH_KEY, band_keys_path, signatures_path, stats_path
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, cached_task, map_cached
from thresher.storage.catalog import build_catalog
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir


@cached_task(name="dedup-signatures", task_run_name="signatures {table}/{shard_id}")
def dedup_signatures_task(run_root: str, config: DedupConfig, table: str, shard_id: str, cache_key: str) -> dict:
    return signature_shard(RunDir(run_root), config, table, shard_id)


@cached_task(name="dedup-cluster", task_run_name="cluster {table}")
def dedup_cluster_task(run_root: str, config: DedupConfig, table: str, cache_key: str) -> dict:
    stats = cluster_table(RunDir(run_root), config, table)
    if stats["cache_key"] != cache_key:
        raise RuntimeError(f"cache key drift for the {table} cluster step: {stats['cache_key']} != {cache_key}")
    return stats


@cached_task(name="dedup-sidecars", task_run_name="sidecars {table}/{shard_id}")
def dedup_sidecars_task(run_root: str, config: DedupConfig, table: str, shard_id: str, cluster_key: str,
                        cache_key: str) -> dict:
    return write_sidecars(RunDir(run_root), config, table, shard_id, cluster_key)


def _signatures_done(run: RunDir, shard_id: str, key: str) -> bool:
    return all(read_cache_key(p) == key for p in (signatures_path(run, shard_id), band_keys_path(run, shard_id)))


def _cluster_done(run: RunDir, table: str, key: str) -> bool:
    outputs = ClusterOutputs.of(run, table).all()
    return all(read_cache_key(p) == key for p in outputs) and stats_path(run, table).is_file()


def _sidecars_done(run: RunDir, shard_id: str, key: str) -> bool:
    return all(read_cache_key(run.score_part(k, shard_id)) == key for k in (EXACT_KEY, MINHASH_KEY))


@flow(name="thresher-dedup", log_prints=True)
@writes_run("run_dir")
def dedup_flow(run_dir: str, config: DedupConfig = DedupConfig()) -> dict:
    """Mark exact and near duplicates in every documents/instructions shard of `run_dir`."""
    run = RunDir(run_dir)
    parts = run.data_parts()
    if not parts:
        raise ValueError(f"{run.root} has no documents or instructions to deduplicate: run `thresher ingest` first")
    params = write_params(run, config)
    run.stage_started(STAGE, seed=config.seed, signature_params=params["signature_params"],
                      prior_runs=list(config.prior_runs))
    root = str(run.root)
    shards = map_cached(
        run, dedup_signatures_task,
        [Job((root, config, table, shard_id), signature_cache_key(run, config, table, shard_id))
         for table, shard_id, _ in parts],
        label="dedup signatures", done=lambda job, _result: _signatures_done(run, job.args[3], job.cache_key))
    tables = data_tables(run)
    cluster_keys = {table: cluster_cache_key(run, config, table) for table in tables}
    clusters = map_cached(
        run, dedup_cluster_task, [Job((root, config, table), cluster_keys[table]) for table in tables],
        label="dedup clusters", unit="documents", rows=lambda r: r["documents"], one_at_a_time=True,
        done=lambda job, _result: _cluster_done(run, job.args[2], job.cache_key))
    sidecars = map_cached(
        run, dedup_sidecars_task,
        [Job((root, config, table, shard_id, cluster_keys[table]),
             sidecar_cache_key(run, config, table, shard_id, cluster_keys[table])) for table, shard_id, _ in parts],
        label="dedup sidecars", done=lambda job, _result: _sidecars_done(run, job.args[3], job.cache_key))
    build_catalog(run)
    tables_stats = dict(zip(tables, clusters))
    summary = dedup_summary(tables_stats, shards, sidecars)
    publish_dedup(run.root.name, config, summary, tables_stats)
    run.stage_finished(STAGE, seed=config.seed, summary=summary)
    return {"run_dir": root, "params": params["signature_params"], **summary}


# -- statistics and artifacts ---------------------------------------------------------------------


def dedup_summary(tables: dict[str, dict], shards: list[dict], sidecars: list[dict]) -> dict:
    return {
        "shards": len(shards),
        "shards_skipped": sum(s["skipped"] for s in shards),
        "sidecars_skipped": sum(s["skipped"] for s in sidecars),
        "signature_seconds": round(sum(s["seconds"] for s in shards), 3),
        "tables": {
            table: {
                "documents": s["documents"],
                "skipped": s["skipped"],
                "exact_duplicates": s["exact"]["duplicates"],
                "exact_duplicate_rate": s["exact"]["duplicate_rate"],
                "minhash_duplicates": s["minhash"]["duplicates"],
                "minhash_duplicate_rate": s["minhash"]["duplicate_rate"],
                "minhash_clusters": s["minhash"]["clusters"],
                "largest_cluster": s["minhash"]["largest_cluster"],
                "duplicates_of_prior_runs": s["minhash"]["duplicates_of_prior_runs"],
                "candidate_edges": s["candidates"]["edges"],
                "edges_dropped_by_verify": s.get("verify", {}).get("edges_dropped"),
                "component_rounds": s["components"]["rounds"],
                "cluster_units_reused": s.get("checkpoints", {}).get("reused", 0),
                "cluster_seconds": s["seconds"],
            }
            for table, s in sorted(tables.items())
        },
    }


def publish_dedup(run_name: str, config: DedupConfig, summary: dict, tables: dict[str, dict]) -> None:
    bands, rows = config.lsh_shape
    lines = [
        f"# Dedup of `{run_name}`\n",
        f"word {config.ngram}-grams, {config.num_perm} permutations (seed {config.seed}), {bands} bands x {rows} "
        f"rows, verify={config.verify} (threshold {config.threshold}), survivor: {config.survivor}"
        + (f" of `{config.survivor_column}`" if config.survivor_column else "")
        + (f", against {len(config.prior_runs)} prior run(s)" if config.prior_runs else "") + "\n",
        "| table | documents | exact duplicates | near duplicates | clusters | largest | of prior runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for table, s in summary["tables"].items():
        lines.append(f"| {table} | {s['documents']:,} | {s['exact_duplicates']:,} ({s['exact_duplicate_rate']:.2%}) | "
                     f"{s['minhash_duplicates']:,} ({s['minhash_duplicate_rate']:.2%}) | {s['minhash_clusters']:,} | "
                     f"{s['largest_cluster']:,} | {s['duplicates_of_prior_runs']:,} |")
    create_markdown_artifact("\n".join(lines) + "\n", key=artifact_key(run_name, "dedup-summary"),
                             description="duplicate rates: duplicates are the cluster members that are not survivors")
    histogram = [
        {"table": table, "kind": kind, "cluster_size": size, "clusters": count}
        for table, s in sorted(tables.items())
        for kind in ("exact", "minhash")
        for size, count in s[kind]["cluster_sizes"].items()
    ]
    create_table_artifact(histogram, key=artifact_key(run_name, "dedup-cluster-sizes"),
                          description=f"Cluster-size histogram of {run_name} (size 1: documents without duplicates)")
