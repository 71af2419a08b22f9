"""Where the dedup stage writes, and the explicit Arrow schema of every table it writes.

    <run>/dedup/params.json                          signature parameters and seeds of the index
    <run>/dedup/signatures/part-<shard>.parquet      per document: doc_key, exact_hash, signature
    <run>/dedup/band_keys/part-<shard>.parquet       per document: one int64 key per LSH band
    <run>/dedup/edges/part-<table>.parquet           candidate pairs (star edges to bucket minima)
    <run>/dedup/exact_clusters/part-<table>.parquet  members of exact-duplicate groups
    <run>/dedup/clusters/part-<table>.parquet        members of near-duplicate clusters
    <run>/scores/exact_dedup@1/part-<shard>.parquet  sidecar: every document, exact_* columns
    <run>/scores/minhash_dedup@1/part-<shard>.parquet  sidecar: every document, minhash_* columns
    <run>/stats/dedup/<table>.json                   counts, timings, cluster-size histogram
    <run>/.dedup-work/<table>/duckdb-tmp/            DuckDB spill files of the cluster step
    <run>/.dedup-work/<table>/checkpoints/           finished units of the cluster step (see
                                                     thresher.dedup.checkpoint); removed with the
                                                     work directory once the cluster tables exist

`<table>` is `documents` or `instructions`: each data table is deduplicated on its own. The
catalog turns every `dedup/<name>/` directory into a view `dedup_<name>`. Rows of prior-run
documents carry that run's directory in `prior_run` (NULL for this run's documents).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from thresher.dedup.lsh import band_column
from thresher.storage.run_dir import RunDir

EXACT_SCORER = "exact_dedup"
MINHASH_SCORER = "minhash_dedup"
SIDECAR_VERSION = "1"
EXACT_KEY = f"{EXACT_SCORER}@{SIDECAR_VERSION}"
MINHASH_KEY = f"{MINHASH_SCORER}@{SIDECAR_VERSION}"
PARAMS_METADATA = b"thresher.dedup_params"
DATA_TABLE_METADATA = b"thresher.data_table"  # documents or instructions: which table a shard's index is of


def _dir(run: RunDir, name: str) -> Path:
    return run.root / "dedup" / name


def params_path(run: RunDir) -> Path:
    return _dir(run, "params.json")


def signatures_path(run: RunDir, shard_id: str) -> Path:
    return _dir(run, "signatures") / f"part-{shard_id}.parquet"


def band_keys_path(run: RunDir, shard_id: str) -> Path:
    return _dir(run, "band_keys") / f"part-{shard_id}.parquet"


def edges_path(run: RunDir, table: str) -> Path:
    return _dir(run, "edges") / f"part-{table}.parquet"


def exact_clusters_path(run: RunDir, table: str) -> Path:
    return _dir(run, "exact_clusters") / f"part-{table}.parquet"


def clusters_path(run: RunDir, table: str) -> Path:
    return _dir(run, "clusters") / f"part-{table}.parquet"


def stats_path(run: RunDir, table: str) -> Path:
    return run.stats_path("dedup", table)


def work_dir(run: RunDir, name: str) -> Path:
    return run.root / ".dedup-work" / name


def signatures_schema(num_perm: int, data_table: str = "documents") -> pa.Schema:
    return pa.schema([
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("doc_key", pa.int64(), nullable=False),          # blake2b-64 of doc_id: the node id
        pa.field("exact_hash", pa.string(), nullable=False),      # blake2b-128 of the normalised text
        pa.field("num_tokens", pa.int32(), nullable=False),
        pa.field("num_shingles", pa.int32(), nullable=False),
        pa.field("signature", pa.list_(pa.uint32(), num_perm), nullable=False),
    ], metadata={"thresher.table": "dedup_signatures", DATA_TABLE_METADATA: data_table})


def band_keys_schema(bands: int, data_table: str = "documents") -> pa.Schema:
    # NULL for documents without shingles (no tokens): they are never LSH candidates.
    return pa.schema([pa.field("doc_key", pa.int64(), nullable=False)]
                     + [pa.field(band_column(b), pa.int64()) for b in range(bands)],
                     metadata={"thresher.table": "dedup_band_keys", DATA_TABLE_METADATA: data_table})


EDGES_SCHEMA = pa.schema([
    pa.field("src_doc_id", pa.string(), nullable=False),
    pa.field("src_prior_run", pa.string()),
    pa.field("dst_doc_id", pa.string(), nullable=False),      # the minimum node of a shared bucket
    pa.field("dst_prior_run", pa.string()),
    pa.field("jaccard", pa.float64()),                         # exact shingle Jaccard (verify only)
    pa.field("kept", pa.bool_(), nullable=False),              # false: dropped by verification
], metadata={"thresher.table": "dedup_edges"})

EXACT_CLUSTERS_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("prior_run", pa.string()),
    pa.field("exact_hash", pa.string(), nullable=False),
    pa.field("exact_cluster_size", pa.int64(), nullable=False),
    pa.field("exact_survivor_id", pa.string(), nullable=False),
    pa.field("exact_survivor_prior_run", pa.string()),
    pa.field("exact_is_duplicate", pa.bool_(), nullable=False),
], metadata={"thresher.table": "dedup_exact_clusters"})

CLUSTERS_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("prior_run", pa.string()),
    pa.field("cluster_id", pa.string(), nullable=False),      # lowest doc_id of the cluster
    pa.field("cluster_size", pa.int64(), nullable=False),
    pa.field("survivor_id", pa.string(), nullable=False),
    pa.field("survivor_prior_run", pa.string()),
    pa.field("is_duplicate", pa.bool_(), nullable=False),
], metadata={"thresher.table": "dedup_clusters"})

# Sidecars: one row per document of the shard, same order; column names unique across all score
# tables, since documents_scored joins them all.
EXACT_SIDECAR_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("exact_hash", pa.string(), nullable=False),
    pa.field("exact_is_duplicate", pa.bool_(), nullable=False),
    pa.field("exact_cluster_size", pa.int64(), nullable=False),
    pa.field("exact_survivor_id", pa.string(), nullable=False),
])

MINHASH_SIDECAR_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("minhash_is_duplicate", pa.bool_(), nullable=False),
    pa.field("minhash_cluster_id", pa.string(), nullable=False),
    pa.field("minhash_cluster_size", pa.int64(), nullable=False),
    pa.field("minhash_survivor_id", pa.string(), nullable=False),
])
