"""The dedup stage as plain functions over a run directory; the Prefect flow only orchestrates them.

    signature_shard(run, config, table, shard)   per shard: exact hash, MinHash signature, band keys
    cluster_table(run, config, table)            per data table, global: exact groups, LSH candidate
                                                 edges, optional verification, connected components,
                                                 survivors (DuckDB, out of core, checkpointed per
                                                 unit: see thresher.dedup.clustering)
    write_sidecars(run, config, table, shard)    per shard: scores/exact_dedup@1 + minhash_dedup@1
    dedup_run(run_dir, config)                   all of the above, then the catalog

Every output is written atomically under a cache key (input identity + stage version + parameter
hash), and a step whose outputs carry its key is skipped, so a killed run resumes where it stopped
and a finished one costs nothing to run again. Results do not depend on the order of the shards:
every table the cluster step writes is sorted, survivors follow a total order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.dedup.cluster import sql_str
from thresher.dedup.clustering import ClusterOutputs, cluster_index
from thresher.dedup.config import DedupConfig, params_hash
from thresher.dedup.exact import exact_hashes
from thresher.dedup.hashing import string_key64
from thresher.dedup.index import index_parts, signature_cache_key, write_params
from thresher.dedup.lsh import band_keys
from thresher.dedup.minhash import MinHasher, text_slices
from thresher.dedup.tables import (
    EXACT_KEY,
    EXACT_SIDECAR_SCHEMA,
    MINHASH_KEY,
    MINHASH_SIDECAR_SCHEMA,
    PARAMS_METADATA,
    band_keys_path,
    band_keys_schema,
    clusters_path,
    exact_clusters_path,
    signatures_path,
    signatures_schema,
    stats_path,
    work_dir,
)
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key, write_json_atomic
from thresher.storage.run_dir import RunDir

__all__ = ["ClusterOutputs", "cluster_index", "cluster_table", "dedup_run", "signature_shard", "write_sidecars"]

CLUSTER_VERSION = "1"
STAGE = "dedup"
_WRITE_ROWS = 65_536  # rows per row group of the signature/band-key files
_STREAM_ROWS = 65_536
TEXT_BYTES_PER_SLICE = 4 << 20  # see minhash.text_slices

ProgressCallback = Callable[[int], None]


# -- per shard: signatures ------------------------------------------------------------------------


def _hash_batch(batch: pa.RecordBatch, hasher: MinHasher, bands: int, rows: int,
                sig_schema: pa.Schema, band_schema: pa.Schema) -> list[tuple[pa.RecordBatch, pa.RecordBatch]]:
    out = []
    for start, stop in text_slices(batch.column("text"), TEXT_BYTES_PER_SLICE):
        part = batch.slice(start, stop - start)
        doc_ids = part.column("doc_id")
        shingles = hasher.shingles(part.column("text"))
        signatures = hasher.signatures(shingles)
        keys = band_keys(signatures, bands, rows)
        counts = shingles.counts
        doc_keys = pa.array([string_key64(d) for d in doc_ids.to_pylist()], pa.int64())
        no_shingles = counts == 0
        sig_batch = pa.record_batch([
            doc_ids,
            doc_keys,
            pa.array(exact_hashes(shingles), pa.string()),
            pa.array(np.diff(shingles.doc_token_offsets).astype(np.int32)),
            pa.array(counts.astype(np.int32)),
            pa.FixedSizeListArray.from_arrays(pa.array(signatures.ravel(), pa.uint32()), hasher.num_perm),
        ], schema=sig_schema)
        band_batch = pa.record_batch(
            [doc_keys] + [pa.array(keys[:, b], pa.int64(), mask=no_shingles) for b in range(bands)],
            schema=band_schema)
        out.append((sig_batch, band_batch))
    return out


def signature_shard(run: RunDir, config: DedupConfig, table: str, shard_id: str,
                    on_rows: ProgressCallback | None = None) -> dict:
    """Hash one data shard into its signature and band-key files, unless both exist under its key."""
    key = signature_cache_key(run, config, table, shard_id)
    sig_out, band_out = signatures_path(run, shard_id), band_keys_path(run, shard_id)
    source = pq.ParquetFile(run.table_part(table, shard_id))
    n_rows = source.metadata.num_rows
    base = {"table": table, "shard_id": shard_id, "rows": n_rows}
    if read_cache_key(sig_out) == key and read_cache_key(band_out) == key:
        if on_rows:
            on_rows(n_rows)
        return {**base, "seconds": 0.0, "skipped": True}

    started = time.perf_counter()
    bands, rows = config.lsh_shape
    hasher = MinHasher(config.ngram, config.num_perm, config.seed)
    sig_schema, band_schema = signatures_schema(config.num_perm, table), band_keys_schema(bands, table)
    pending: list[tuple[pa.RecordBatch, pa.RecordBatch]] = []

    def flush(sig_writer: AtomicParquetWriter, band_writer: AtomicParquetWriter) -> None:
        if pending:
            for writer, schema, i in ((sig_writer, sig_schema, 0), (band_writer, band_schema, 1)):
                merged = pa.Table.from_batches([p[i] for p in pending], schema=schema).combine_chunks()
                for out in merged.to_batches(max_chunksize=_WRITE_ROWS):
                    writer.write(out)
            pending.clear()

    with AtomicParquetWriter(sig_out, sig_schema, key) as sig_writer, \
            AtomicParquetWriter(band_out, band_schema, key) as band_writer:
        buffered = 0
        for batch in source.iter_batches(batch_size=config.batch_rows, columns=["doc_id", "text"]):
            pending.extend(_hash_batch(batch, hasher, bands, rows, sig_schema, band_schema))
            buffered += batch.num_rows
            if on_rows:
                on_rows(batch.num_rows)
            if buffered >= _WRITE_ROWS:
                flush(sig_writer, band_writer)
                buffered = 0
        flush(sig_writer, band_writer)
    return {**base, "seconds": round(time.perf_counter() - started, 3), "skipped": False}


# -- per table: clusters --------------------------------------------------------------------------


def score_parts(run: RunDir, column: str) -> tuple[str, list[Path]]:
    """The newest score table of the run that has `column`, and its part files."""
    from thresher.storage.catalog import latest_score_keys

    available = []
    for key in latest_score_keys(run):
        if key in (EXACT_KEY, MINHASH_KEY):
            continue
        parts = sorted((run.root / "scores" / key).glob("part-*.parquet"))
        if not parts:
            continue
        names = pq.read_schema(parts[0]).names
        if column in names:
            return key, parts
        available += [n for n in names if n != "doc_id"]
    raise ValueError(f"survivor_column {column!r} is in no score table of {run.root}; "
                     f"available: {', '.join(sorted(set(available))) or '(none: run the score stage first)'}")


def cluster_cache_key(run: RunDir, config: DedupConfig, table: str) -> str:
    """Version + cluster parameters + the identity of every index part and score part it reads."""
    parts = []
    for part in index_parts(run, config, table):
        identity = (signature_cache_key(run, config, table, part.shard_id) if part.run_idx == 0
                    else read_cache_key(part.signatures))
        parts.append([part.run_idx, str(part.run_root) if part.run_idx else "", part.shard_id, identity])
    scores = []
    if config.survivor_column:
        _, files = score_parts(run, config.survivor_column)
        scores = [[f.name, read_cache_key(f)] for f in files]
    payload = {"params": config.cluster_params(), "table": table, "parts": sorted(parts), "scores": scores}
    return f"dedup-cluster@{CLUSTER_VERSION}:{params_hash(payload)}"


def cluster_table(run: RunDir, config: DedupConfig, table: str) -> dict:
    """Exact groups and near-duplicate clusters of one data table of a run (with prior runs' indexes)."""
    key = cluster_cache_key(run, config, table)
    outputs = ClusterOutputs.of(run, table)
    stats_file = stats_path(run, table)
    if all(read_cache_key(p) == key for p in outputs.all()) and stats_file.is_file():
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        if stats.get("cache_key") == key:
            return {**stats, "seconds": 0.0, "skipped": True}
    parts = index_parts(run, config, table)
    for part in parts:
        if part.run_idx == 0:
            expected = signature_cache_key(run, config, table, part.shard_id)
            if read_cache_key(part.signatures) != expected or read_cache_key(part.band_keys) != expected:
                raise FileNotFoundError(f"{part.signatures} is missing or stale: run signature_shard first")
    score_files = score_parts(run, config.survivor_column)[1] if config.survivor_column else None
    stats = {"table": table, **cluster_index(parts, config, outputs, cache_key=key, work=work_dir(run, table),
                                             score_files=score_files)}
    write_json_atomic(stats_file, stats)
    return {**stats, "skipped": False}


# -- per shard: sidecars --------------------------------------------------------------------------


def sidecar_cache_key(run: RunDir, config: DedupConfig, table: str, shard_id: str, cluster_key: str) -> str:
    shard = signature_cache_key(run, config, table, shard_id).partition("<-")[2]
    return f"dedup-sidecars@1:{cluster_key}<-{shard}"


def _sidecar_schema(schema: pa.Schema, config: DedupConfig) -> pa.Schema:
    params = {"cluster_params": config.cluster_params(), "prior_runs": list(config.prior_runs)}
    return schema.with_metadata({PARAMS_METADATA: json.dumps(params, sort_keys=True).encode()})


def write_sidecars(run: RunDir, config: DedupConfig, table: str, shard_id: str,
                   cluster_key: str | None = None, on_rows: ProgressCallback | None = None) -> dict:
    """scores/exact_dedup@1 and scores/minhash_dedup@1 for one shard: every document, shard order."""
    cluster_key = cluster_key or cluster_cache_key(run, config, table)
    key = sidecar_cache_key(run, config, table, shard_id, cluster_key)
    exact_out, minhash_out = run.score_part(EXACT_KEY, shard_id), run.score_part(MINHASH_KEY, shard_id)
    sig = signatures_path(run, shard_id)
    n_rows = pq.ParquetFile(sig).metadata.num_rows
    base = {"table": table, "shard_id": shard_id, "rows": n_rows}
    if read_cache_key(exact_out) == key and read_cache_key(minhash_out) == key:
        if on_rows:
            on_rows(n_rows)
        return {**base, "seconds": 0.0, "skipped": True}
    if read_cache_key(clusters_path(run, table)) != cluster_key:
        raise FileNotFoundError(f"{clusters_path(run, table)} is missing or stale: run cluster_table first")
    started = time.perf_counter()
    exact_schema = _sidecar_schema(EXACT_SIDECAR_SCHEMA, config)
    minhash_schema = _sidecar_schema(MINHASH_SIDECAR_SCHEMA, config)
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        reader = con.sql(f"""
            SELECT s.doc_id, s.exact_hash,
                   coalesce(e.exact_is_duplicate, false) AS exact_is_duplicate,
                   coalesce(e.exact_cluster_size, 1) AS exact_cluster_size,
                   coalesce(e.exact_survivor_id, s.doc_id) AS exact_survivor_id,
                   coalesce(c.is_duplicate, false) AS minhash_is_duplicate,
                   coalesce(c.cluster_id, s.doc_id) AS minhash_cluster_id,
                   coalesce(c.cluster_size, 1) AS minhash_cluster_size,
                   coalesce(c.survivor_id, s.doc_id) AS minhash_survivor_id
            FROM read_parquet({sql_str(str(sig))}, file_row_number = true) s
            LEFT JOIN (SELECT * FROM read_parquet({sql_str(str(exact_clusters_path(run, table)))})
                       WHERE prior_run IS NULL) e USING (doc_id)
            LEFT JOIN (SELECT * FROM read_parquet({sql_str(str(clusters_path(run, table)))})
                       WHERE prior_run IS NULL) c USING (doc_id)
            ORDER BY s.file_row_number
        """).to_arrow_reader(_STREAM_ROWS)
        with AtomicParquetWriter(exact_out, exact_schema, key) as exact_writer, \
                AtomicParquetWriter(minhash_out, minhash_schema, key) as minhash_writer:
            for batch in reader:
                for writer, schema in ((exact_writer, EXACT_SIDECAR_SCHEMA), (minhash_writer, MINHASH_SIDECAR_SCHEMA)):
                    columns = [batch.column(f.name).cast(f.type) for f in schema]
                    writer.write(pa.RecordBatch.from_arrays(columns, schema=writer.schema))
                if on_rows:
                    on_rows(batch.num_rows)
    finally:
        con.close()
    return {**base, "seconds": round(time.perf_counter() - started, 3), "skipped": False}


# -- the whole stage without Prefect --------------------------------------------------------------


def data_tables(run: RunDir) -> list[str]:
    return sorted({table for table, _, _ in run.data_parts()})


def dedup_run(run_dir: str | Path, config: DedupConfig | None = None) -> dict:
    """Run the whole dedup stage over a run directory in this process; returns per-table stats."""
    from thresher.storage.catalog import build_catalog

    config = config or DedupConfig()
    run = RunDir(run_dir)
    parts = run.data_parts()
    if not parts:
        raise ValueError(f"{run.root} has no documents or instructions: run the ingest stage first")
    run.stage_started(STAGE, seed=config.seed)
    write_params(run, config)
    shards = [signature_shard(run, config, table, shard_id) for table, shard_id, _ in parts]
    tables = {table: cluster_table(run, config, table) for table in data_tables(run)}
    sidecars = [write_sidecars(run, config, table, shard_id, tables[table]["cache_key"])
                for table, shard_id, _ in parts]
    build_catalog(run)
    run.stage_finished(STAGE, seed=config.seed, tables={t: _brief(s) for t, s in tables.items()})
    return {"run_dir": str(run.root), "signatures": shards, "tables": tables, "sidecars": sidecars}


def _brief(stats: dict) -> dict:
    return {"documents": stats["documents"],
            "exact_duplicates": stats["exact"]["duplicates"],
            "minhash_duplicates": stats["minhash"]["duplicates"],
            "minhash_duplicate_rate": stats["minhash"]["duplicate_rate"],
            "minhash_clusters": stats["minhash"]["clusters"]}
