"""Semantic deduplication (SemDeDup, Abbas et al. 2023; the NeMo Curator recipe) over a run's embeddings.

    1. k-means   seeded spherical k-means (thresher.embeddings.kmeans) on a bounded, seeded sample of
                 the embeddings; then every row is assigned to its nearest centroid, streaming.
    2. pairs     rows are sorted by (cluster, doc_id) out of core (DuckDB); each cluster in turn is
                 loaded and its cosine-similarity matrix computed block by block: every pair at
                 similarity >= threshold is a semantic-duplicate edge (pairs in different clusters are
                 never compared, as in SemDeDup); each row's highest similarity to any other row of
                 its cluster is kept too (`semdedup_max_similarity`, so a recipe can apply a stricter
                 threshold in SQL without running this again).
    3. groups    connected components of the edges (scipy, per cluster: components never cross
                 clusters) are the duplicate groups, named by their lowest doc_id.
    4. survivor  one per group, by the MinHash dedup's own rule and code
                 (thresher.dedup.cluster.rank_members): lowest doc_id, or highest/lowest score
                 column (ties and missing values: lowest doc_id).

Outputs (every file atomic, written under one cache key: the settings + the content identity of
every embedding part read (+ of the survivor score's parts)):

    semdedup/groups/part-<table>.parquet     members of groups of two or more: group, survivor, duplicate flag
    semdedup/edges/part-<table>.parquet      pairs at >= threshold (per row at most `max_neighbors`
                                             of its most similar rows: a cluster of 10^5 copies
                                             would otherwise make 5 * 10^9 pairs)
    semdedup/centroids/part-<table>.parquet  the k-means centroids and their sizes
    scores/semdedup@1/part-<shard>.parquet   sidecar, every row: semdedup_cluster,
                                             semdedup_centroid_similarity, semdedup_max_similarity,
                                             semdedup_group, semdedup_group_size,
                                             semdedup_survivor_id, semdedup_is_duplicate
    stats/semdedup/<table>.json              counts, k-means statistics, similarity histogram

A selection recipe drops semantic duplicates with `NOT semdedup_is_duplicate`. Memory: the training
sample, one cluster's vectors and `block_rows` x cluster-size similarities at a time.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.dedup.cluster import connect, rank_members, sql_file_list, sql_str
from thresher.embeddings.apply import embedding_parts, iter_vectors, seeded_sample
from thresher.embeddings.config import SemDedupConfig, config_hash
from thresher.embeddings.kmeans import assign, spherical_kmeans
from thresher.embeddings.scorer import EmbeddingScorer, vector_type, vectors_to_arrow
from thresher.scorers.base import scorer_key, scorer_params_hash
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key, write_json_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import quote_ident

STAGE = "semdedup"
SCORER_NAME = "semdedup"
SIDECAR_VERSION = "1"
SEMDEDUP_KEY = f"{SCORER_NAME}@{SIDECAR_VERSION}"
MAX_NEIGHBORS = 64
MAX_BLOCK_CELLS = 1 << 25
HISTOGRAM_EDGES = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.05))

SIDECAR_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("semdedup_cluster", pa.int32()),  # null: the row has no embedding (null text)
    pa.field("semdedup_centroid_similarity", pa.float32()),
    pa.field("semdedup_max_similarity", pa.float32()),  # to any other row of its cluster (null: alone)
    pa.field("semdedup_group", pa.string(), nullable=False),  # lowest doc_id of its group; itself if alone
    pa.field("semdedup_group_size", pa.int64(), nullable=False),
    pa.field("semdedup_survivor_id", pa.string(), nullable=False),
    pa.field("semdedup_is_duplicate", pa.bool_(), nullable=False),
])
GROUPS_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("group_id", pa.string(), nullable=False),
    pa.field("group_size", pa.int64(), nullable=False),
    pa.field("survivor_id", pa.string(), nullable=False),
    pa.field("is_duplicate", pa.bool_(), nullable=False),
    pa.field("cluster", pa.int32(), nullable=False),
    pa.field("max_similarity", pa.float32(), nullable=False),
], metadata={"thresher.table": "semdedup_groups"})
EDGES_SCHEMA = pa.schema([
    pa.field("src_doc_id", pa.string(), nullable=False),
    pa.field("dst_doc_id", pa.string(), nullable=False),  # src_doc_id < dst_doc_id
    pa.field("similarity", pa.float32(), nullable=False),
    pa.field("cluster", pa.int32(), nullable=False),
], metadata={"thresher.table": "semdedup_edges"})
_DOCS_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("cluster", pa.int32(), nullable=False),
    pa.field("centroid_similarity", pa.float32(), nullable=False),
    pa.field("max_similarity", pa.float32()),
    pa.field("group_id", pa.string(), nullable=False),
    pa.field("group_size", pa.int64(), nullable=False),
])


def centroids_schema(dimension: int) -> pa.Schema:
    return pa.schema([pa.field("cluster", pa.int32(), nullable=False), pa.field("size", pa.int64(), nullable=False),
                      pa.field("centroid", vector_type(dimension), nullable=False)],
                     metadata={"thresher.table": "semdedup_centroids"})


def groups_path(run: RunDir, table: str) -> Path:
    return run.root / "semdedup" / "groups" / f"part-{table}.parquet"


def edges_path(run: RunDir, table: str) -> Path:
    return run.root / "semdedup" / "edges" / f"part-{table}.parquet"


def centroids_path(run: RunDir, table: str) -> Path:
    return run.root / "semdedup" / "centroids" / f"part-{table}.parquet"


def stats_path(run: RunDir, table: str) -> Path:
    return run.stats_path(STAGE, table)


def work_dir(run: RunDir, table: str) -> Path:
    return run.root / ".semdedup-work" / table


def resolve_seed(run: RunDir, seed: int | None) -> int:
    if seed is not None:
        return seed
    return int(run.read_manifest().get("seed", 0)) if run.exists() else 0


def data_tables(run: RunDir, config: SemDedupConfig) -> list[str]:
    tables = sorted({t for t, _, _ in run.data_parts()})
    return [t for t in tables if config.table in (None, t)]


def _score_files(run: RunDir, config: SemDedupConfig) -> list[Path]:
    if not config.survivor_column:
        return []
    from thresher.dedup.stage import score_parts

    return score_parts(run, config.survivor_column)[1]


def semdedup_cache_key(run: RunDir, config: SemDedupConfig, scorer: EmbeddingScorer, table: str) -> str:
    """Version + settings + seed + the identity of every embedding part (and survivor score part) read."""
    parts = [[shard_id, read_cache_key(path)] for _, shard_id, path in embedding_parts(run, scorer, table)]
    scores = [[f.name, read_cache_key(f)] for f in _score_files(run, config)]
    payload = {"config": config.model_dump(mode="json", exclude={"memory_limit", "block_rows"}),
               "seed": resolve_seed(run, config.seed),
               "embeddings": f"{scorer_key(scorer)}:{scorer_params_hash(scorer)}",
               "table": table, "parts": parts, "scores": scores, "max_neighbors": MAX_NEIGHBORS}
    digest = hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=8).hexdigest()
    return f"{SEMDEDUP_KEY}:{digest}"


def outputs_done(run: RunDir, table: str, key: str) -> bool:
    files = [groups_path(run, table), edges_path(run, table), centroids_path(run, table)]
    files += [run.score_part(SEMDEDUP_KEY, shard_id) for t, shard_id, _ in run.data_parts() if t == table]
    if not all(read_cache_key(f) == key for f in files) or not stats_path(run, table).is_file():
        return False
    return json.loads(stats_path(run, table).read_text(encoding="utf-8")).get("cache_key") == key


# -- step 2 + 3: pairs and groups within each cluster -----------------------------------------------


def cluster_groups(doc_ids: list[str], x: np.ndarray, threshold: float, block_rows: int,
                   max_neighbors: int = MAX_NEIGHBORS) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, float]]]:
    """For the rows of one cluster: (max similarity to any other row (nan if alone), component
    label (the index of the component's lowest doc_id), edges (i, j, similarity) with i < j)."""
    m = len(doc_ids)
    max_sim = np.full(m, np.nan, dtype=np.float32)
    if m == 1:
        return max_sim, np.zeros(1, dtype=np.int64), []
    src_parts, dst_parts, sim_parts = [], [], []
    block_rows = max(1, min(block_rows, MAX_BLOCK_CELLS // m))  # a block holds at most 128 MB of similarities
    for start in range(0, m, block_rows):
        s = x[start : start + block_rows] @ x.T
        rows = np.arange(len(s))
        s[rows, start + rows] = -np.inf  # not oneself
        max_sim[start : start + len(s)] = s.max(axis=1)
        hit = s >= threshold
        counts = hit.sum(axis=1)
        over = counts > max_neighbors
        if over.any():  # keep only each crowded row's most similar neighbours
            top = np.argpartition(-s[over], max_neighbors - 1, axis=1)[:, :max_neighbors]
            limited = np.zeros_like(hit[over])
            np.put_along_axis(limited, top, True, axis=1)
            hit[over] &= limited
        r, c = np.nonzero(hit)
        src_parts.append(start + r)
        dst_parts.append(c)
        sim_parts.append(s[r, c])
    src, dst, sims = np.concatenate(src_parts), np.concatenate(dst_parts), np.concatenate(sim_parts)
    if len(src):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(m, m))
        _, labels = connected_components(graph, directed=False)
    else:
        labels = np.arange(m)
    # name each component by its lowest doc_id (rows come sorted by doc_id: the lowest index)
    first = np.full(labels.max() + 1, m, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(m))
    component = first[labels]
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    _, first_seen = np.unique(lo.astype(np.int64) * m + hi, return_index=True)  # sorted by (lo, hi)
    edges = list(zip(lo[first_seen].tolist(), hi[first_seen].tolist(), sims[first_seen].tolist()))
    return max_sim, component, edges


def _clusters_in_order(path: Path, column: str, batch_rows: int = 16_384
                       ) -> Iterator[tuple[int, list[str], np.ndarray, np.ndarray]]:
    """(cluster, doc_ids, vectors, centroid similarities) of each cluster of a file sorted by cluster."""
    from thresher.embeddings.scorer import arrow_to_vectors

    pending: list[pa.RecordBatch] = []

    def emit(batches: list[pa.RecordBatch]):
        table = pa.Table.from_batches(batches)
        vectors, _ = arrow_to_vectors(table.column(column))
        return (int(table.column("cluster")[0].as_py()), table.column("doc_id").to_pylist(), vectors,
                table.column("centroid_similarity").to_numpy())

    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        clusters = batch.column("cluster").to_numpy()
        cuts = np.flatnonzero(np.diff(clusters)) + 1
        start = 0
        for cut in cuts.tolist():
            pending.append(batch.slice(start, cut - start))
            yield emit(pending)
            pending, start = [], cut
        pending.append(batch.slice(start))
    if pending and sum(b.num_rows for b in pending):
        yield emit(pending)


def similarity_histogram(values: np.ndarray) -> dict[str, int]:
    """Counts of values in [0, 0.05), [0.05, 0.1), ..., [0.95, 1.0]; negatives count in the first bin."""
    finite = values[np.isfinite(values)]
    bins = np.clip(np.floor(finite * 20).astype(np.int64), 0, 19)
    counts = np.bincount(bins, minlength=20)
    return {f"{i / 20:.2f}-{(i + 1) / 20:.2f}": int(c) for i, c in enumerate(counts)}


# -- the stage ----------------------------------------------------------------------------------------


def semdedup_table(run: RunDir, config: SemDedupConfig, scorer: EmbeddingScorer, table: str) -> dict:
    """Semantic duplicates of one data table (see the module doc); returns statistics."""
    key = semdedup_cache_key(run, config, scorer, table)
    if outputs_done(run, table, key):
        stats = json.loads(stats_path(run, table).read_text(encoding="utf-8"))
        return {**stats, "seconds": 0.0, "skipped": True}
    started = time.perf_counter()
    parts = embedding_parts(run, scorer, table)
    paths = [p for _, _, p in parts]
    column = scorer.vector_column
    seed = resolve_seed(run, config.seed)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    work = work_dir(run, table)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stats: dict = {"table": table, "rows": rows, "threshold": config.threshold, "seed": seed,
                   "embeddings": scorer_key(scorer), "config_hash": config_hash(config)}
    try:
        # 1. k-means on a seeded sample, then assign every row (streaming)
        t0 = time.perf_counter()
        sample_ids, sample = seeded_sample(paths, column, config.kmeans_sample, rows, seed, "semdedup-kmeans")
        if not sample_ids:
            raise ValueError(f"{table} of {run.root} has no embedded rows to deduplicate")
        k = config.clusters or max(1, math.ceil(rows / config.target_cluster_size))
        centroids, kmeans_stats = spherical_kmeans(sample, k, iterations=config.kmeans_iterations, seed=seed)
        del sample
        assigned = work / "assigned.parquet"
        assigned_schema = pa.schema([pa.field("cluster", pa.int32(), nullable=False),
                                     pa.field("doc_id", pa.string(), nullable=False),
                                     pa.field("centroid_similarity", pa.float32(), nullable=False),
                                     pa.field(column, vector_type(scorer.dimension), nullable=False)])
        sizes = np.zeros(len(centroids), dtype=np.int64)
        with AtomicParquetWriter(assigned, assigned_schema) as writer:
            for doc_ids, vectors in iter_vectors(paths, column):
                labels, sims = assign(vectors, centroids)
                sizes += np.bincount(labels, minlength=len(centroids))
                writer.write(pa.record_batch([pa.array(labels, pa.int32()), pa.array(doc_ids, pa.string()),
                                              pa.array(sims, pa.float32()), vectors_to_arrow(vectors)],
                                             schema=assigned_schema))
        stats["kmeans"] = {**kmeans_stats, "sample_rows": len(sample_ids), "largest_cluster": int(sizes.max()),
                           "seconds": round(time.perf_counter() - t0, 3)}
        with AtomicParquetWriter(centroids_path(run, table), centroids_schema(scorer.dimension), key) as writer:
            writer.write(pa.record_batch([pa.array(np.arange(len(centroids)), pa.int32()), pa.array(sizes, pa.int64()),
                                          vectors_to_arrow(centroids)], schema=centroids_schema(scorer.dimension)))

        # 2 + 3. sort by (cluster, doc_id) out of core; pairs and components cluster by cluster
        t0 = time.perf_counter()
        con = connect(work / "duckdb-tmp", config.memory_limit)
        try:
            ordered = work / "ordered.parquet"
            con.execute(f"COPY (SELECT * FROM read_parquet({sql_str(str(assigned))}) ORDER BY cluster, doc_id) "
                        f"TO {sql_str(str(ordered))} (FORMAT parquet)")
            assigned.unlink()
            docs_path = work / "docs.parquet"
            all_max: list[np.ndarray] = []
            n_edges = 0
            with AtomicParquetWriter(docs_path, _DOCS_SCHEMA) as docs_writer, \
                    AtomicParquetWriter(edges_path(run, table), EDGES_SCHEMA, key) as edge_writer:
                for cluster, doc_ids, vectors, centroid_sims in _clusters_in_order(ordered, column):
                    max_sim, component, edges = cluster_groups(doc_ids, vectors, config.threshold, config.block_rows)
                    all_max.append(max_sim)
                    group_sizes = np.bincount(component, minlength=len(doc_ids))[component]
                    docs_writer.write(pa.record_batch([
                        pa.array(doc_ids, pa.string()), pa.array(np.full(len(doc_ids), cluster), pa.int32()),
                        pa.array(centroid_sims, pa.float32()),
                        pa.array(max_sim, pa.float32(), mask=np.isnan(max_sim)),
                        pa.array([doc_ids[c] for c in component.tolist()], pa.string()),
                        pa.array(group_sizes, pa.int64())], schema=_DOCS_SCHEMA))
                    if edges:
                        a, b, s = zip(*edges)
                        edge_writer.write(pa.record_batch([
                            pa.array([doc_ids[i] for i in a], pa.string()),
                            pa.array([doc_ids[j] for j in b], pa.string()),
                            pa.array(s, pa.float32()), pa.array(np.full(len(a), cluster), pa.int32())],
                            schema=EDGES_SCHEMA))
                        n_edges += len(edges)
            ordered.unlink()
            maxima = np.concatenate(all_max) if all_max else np.zeros(0, np.float32)
            stats["pairs"] = {"edges": n_edges, "seconds": round(time.perf_counter() - t0, 3)}
            stats["max_similarity_histogram"] = similarity_histogram(maxima)

            # 4. survivors, by the MinHash dedup's rule
            t0 = time.perf_counter()
            score_files = _score_files(run, config)
            if score_files:
                name = quote_ident(config.survivor_column)
                con.execute(f"CREATE VIEW scores AS SELECT doc_id, {name} AS score "
                            f"FROM read_parquet({sql_file_list(score_files)}, union_by_name = true)")
            else:
                con.execute("CREATE VIEW scores AS SELECT NULL::VARCHAR AS doc_id, NULL::DOUBLE AS score WHERE false")
            con.execute(f"""
                CREATE TABLE members AS
                SELECT d.group_id AS label, row_number() OVER (ORDER BY d.doc_id) AS node, d.doc_id,
                       0 AS run_idx, s.score, d.cluster, d.max_similarity
                FROM read_parquet({sql_str(str(docs_path))}) d LEFT JOIN scores s USING (doc_id)
                WHERE d.group_size > 1
            """)
            by_score = {"highest_score": "highest", "lowest_score": "lowest"}.get(config.survivor)
            rank_members(con, "members", "ranked", by_score=by_score)
            _copy(con, """
                SELECT r.doc_id, r.label AS group_id, r.cluster_size AS group_size, r.survivor_id, r.is_duplicate,
                       m.cluster, m.max_similarity
                FROM ranked r JOIN members m USING (node) ORDER BY group_id, r.doc_id
            """, groups_path(run, table), GROUPS_SCHEMA, key)
            summary = con.execute("""
                SELECT count(*), count(*) FILTER (WHERE is_duplicate), count(DISTINCT label),
                       coalesce(max(cluster_size), 0)
                FROM ranked""").fetchall()[0]
            stats["groups"] = {"rows_in_groups": summary[0], "duplicates": summary[1], "groups": summary[2],
                               "largest_group": summary[3], "seconds": round(time.perf_counter() - t0, 3)}

            # sidecars: every row of every shard, in shard order
            t0 = time.perf_counter()
            con.execute(f"CREATE TABLE docs AS SELECT * FROM read_parquet({sql_str(str(docs_path))})")
            for _, shard_id, path in parts:
                _copy(con, f"""
                    SELECT e.doc_id, d.cluster AS semdedup_cluster,
                           d.centroid_similarity AS semdedup_centroid_similarity,
                           d.max_similarity AS semdedup_max_similarity,
                           coalesce(r.group_id, e.doc_id) AS semdedup_group,
                           coalesce(r.group_size, 1) AS semdedup_group_size,
                           coalesce(r.survivor_id, e.doc_id) AS semdedup_survivor_id,
                           coalesce(r.is_duplicate, false) AS semdedup_is_duplicate
                    FROM read_parquet({sql_str(path)}, file_row_number = true) e
                    LEFT JOIN docs d USING (doc_id)
                    LEFT JOIN read_parquet({sql_str(str(groups_path(run, table)))}) r USING (doc_id)
                    ORDER BY e.file_row_number
                """, run.score_part(SEMDEDUP_KEY, shard_id), SIDECAR_SCHEMA, key)
            stats["sidecar_seconds"] = round(time.perf_counter() - t0, 3)
        finally:
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats["duplicate_rate"] = round(stats["groups"]["duplicates"] / rows, 6) if rows else 0.0
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["cache_key"] = key
    write_json_atomic(stats_path(run, table), stats)
    return {**stats, "skipped": False}


def _copy(con, sql: str, path: Path, schema: pa.Schema, key: str) -> int:
    reader = con.sql(sql).to_arrow_reader(65_536)
    with AtomicParquetWriter(path, schema, key) as writer:
        for batch in reader:
            columns = [batch.column(f.name).cast(f.type) for f in schema]
            writer.write(pa.RecordBatch.from_arrays(columns, schema=writer.schema))
    return writer.rows


def semdedup_run(run: RunDir, config: SemDedupConfig, scorer: EmbeddingScorer) -> dict[str, dict]:
    """Semantic dedup of every data table the config names, in this process (no Prefect)."""
    return {table: semdedup_table(run, config, scorer, table) for table in data_tables(run, config)}


def group_summary(run: RunDir, table: str, limit: int = 5) -> list[dict]:
    """The largest groups of a table: sizes and their survivors' first characters (for reports)."""
    import duckdb

    path = groups_path(run, table)
    if not path.is_file():
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(f"""
            SELECT group_id, any_value(group_size), any_value(survivor_id), round(min(max_similarity), 3)
            FROM read_parquet({sql_str(str(path))}) GROUP BY group_id ORDER BY 2 DESC, 1 LIMIT {int(limit)}
        """).fetchall()
    finally:
        con.close()
    return [{"group": g, "size": s, "survivor": v, "min_max_similarity": m} for g, s, v, m in rows]


