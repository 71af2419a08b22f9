"""The dedup cluster step of one data table, resumable: exact groups, LSH candidate edges, optional
verification, connected components and survivors, in DuckDB (out of core).

The step is global (every shard of the table, and of any prior runs, takes part), so a crash
cannot be survived by caching whole tasks. It checkpoints instead (`thresher.dedup.checkpoint`):

    exact-groups        exact hashes shared by two or more documents
    band-<NN>           the star edges of LSH band NN (one unit per band)
    shingles-<r>-<id>   verify only: the shingle sets of a shard holding candidate endpoints
                        (r: 0 for this run, i for its i-th prior run; id: the shard id)
    jaccard             verify only: the Jaccard similarity of every candidate pair
    components          connected components of the kept edges (node -> minimum node)

A killed step resumes at the first unit it had not finished; survivors and the output tables are
then computed from the units' files, which makes the outputs byte-for-byte those of a run that
was never interrupted (every output is sorted; survivors follow a total order).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.dedup.checkpoint import Checkpoints, copy_query
from thresher.dedup.cluster import (
    aggregate_partitions,
    band_edges,
    connect,
    connected_components,
    rank_members,
    scalar,
    sql_file_list,
    sql_str,
)
from thresher.dedup.config import DedupConfig
from thresher.dedup.index import IndexPart, node_salt
from thresher.dedup.lsh import band_column
from thresher.dedup.tables import (
    CLUSTERS_SCHEMA,
    EDGES_SCHEMA,
    EXACT_CLUSTERS_SCHEMA,
    clusters_path,
    edges_path,
    exact_clusters_path,
)
from thresher.dedup.verify import verify_candidates
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import quote_ident

_EXACT_GROUPS_SCHEMA = pa.schema([pa.field("exact_hash", pa.string(), nullable=False)])
_EDGE_SCHEMA = pa.schema([pa.field("src", pa.int64(), nullable=False), pa.field("dst", pa.int64(), nullable=False)])
_COMPONENTS_SCHEMA = pa.schema([pa.field("node", pa.int64(), nullable=False),
                                pa.field("label", pa.int64(), nullable=False)])


def _node(run_idx: int) -> str:
    return "doc_key" if run_idx == 0 else f"xor(doc_key, {node_salt(run_idx)}::BIGINT)"


def _create_views(con: duckdb.DuckDBPyConnection, parts: list[IndexPart], bands: int,
                  score_files: list[Path], score_column: str | None) -> None:
    by_run: dict[int, list[IndexPart]] = {}
    for part in parts:
        by_run.setdefault(part.run_idx, []).append(part)
    prior = {i: str(ps[0].run_root) for i, ps in by_run.items() if i}
    con.execute("CREATE OR REPLACE TABLE runs (run_idx INTEGER, prior_run VARCHAR)")
    con.executemany("INSERT INTO runs VALUES (?, ?)", [(0, None)] + sorted(prior.items()))
    sigs, keys = [], []
    band_cols = ", ".join(band_column(b) for b in range(bands))
    for i, ps in sorted(by_run.items()):
        sigs.append(f"SELECT {_node(i)} AS node, doc_id, exact_hash, {i} AS run_idx, filename "
                    f"FROM read_parquet({sql_file_list([p.signatures for p in ps])}, filename = true)")
        keys.append(f"SELECT {_node(i)} AS node, {'true' if i == 0 else 'false'} AS is_current, {band_cols} "
                    f"FROM read_parquet({sql_file_list([p.band_keys for p in ps])})")
    con.execute("CREATE OR REPLACE VIEW sigs AS " + " UNION ALL ".join(sigs))
    con.execute("CREATE OR REPLACE VIEW keys AS " + " UNION ALL ".join(keys))
    if score_column:
        column = quote_ident(score_column)
        con.execute(f"CREATE OR REPLACE VIEW scores AS SELECT doc_id, {column} AS score "
                    f"FROM read_parquet({sql_file_list(score_files)}, union_by_name = true)")
    else:
        con.execute("CREATE OR REPLACE VIEW scores AS SELECT NULL::VARCHAR AS doc_id, NULL AS score WHERE false")


def _size_histogram(con: duckdb.DuckDBPyConnection, ranked: str, documents: int) -> dict:
    rows = con.execute(f"""
        SELECT cluster_size, count(*) FROM (SELECT DISTINCT label, cluster_size FROM {ranked} WHERE run_idx = 0)
        GROUP BY 1 ORDER BY 1
    """).fetchall()
    in_clusters = scalar(con, f"SELECT count(*) FROM {ranked} WHERE run_idx = 0") or 0
    bins: dict[str, int] = {"1": documents - in_clusters}
    for size, count in rows:
        hi = 1 << (int(size) - 1).bit_length()  # bins 2, 3-4, 5-8, 9-16, ...
        lo = hi // 2 + 1
        label = str(hi) if lo == hi else f"{lo}-{hi}"
        bins[label] = bins.get(label, 0) + count
    return bins


def _summary(con: duckdb.DuckDBPyConnection, ranked: str) -> dict:
    row = con.execute(f"""
        SELECT count(*) FILTER (WHERE run_idx = 0),
               count(*) FILTER (WHERE run_idx = 0 AND is_duplicate),
               count(*) FILTER (WHERE run_idx = 0 AND is_duplicate AND survivor_run_idx > 0),
               count(DISTINCT label) FILTER (WHERE run_idx = 0),
               coalesce(max(cluster_size), 0)
        FROM {ranked}
    """).fetchall()[0]
    return {"documents_in_clusters": row[0], "duplicates": row[1], "duplicates_of_prior_runs": row[2],
            "clusters": row[3], "largest_cluster": row[4]}


def _check_unique_nodes(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Two documents with one 64-bit node id (2^-64 per pair) would be merged: refuse, loudly.
    Only nodes in clusters can matter (sidecars join on doc_id), so only those are checked."""
    collisions = scalar(con, f"SELECT count(*) - count(DISTINCT node) FROM {table}")
    if collisions:
        raise RuntimeError(f"{collisions} doc_key collision(s) in {table}: two doc_ids share a 64-bit key; "
                           "this table cannot be deduplicated as is")


@dataclass(frozen=True)
class ClusterOutputs:
    edges: Path
    exact_clusters: Path
    clusters: Path

    @classmethod
    def of(cls, run: RunDir, table: str) -> ClusterOutputs:
        return cls(edges_path(run, table), exact_clusters_path(run, table), clusters_path(run, table))

    def all(self) -> tuple[Path, Path, Path]:
        return self.edges, self.exact_clusters, self.clusters


def checkpoint_dir(work: Path) -> Path:
    return work / "checkpoints"


def _exact_groups(con: duckdb.DuckDBPyConnection, checkpoints: Checkpoints, partitions: int) -> Path:
    """Groups of equal exact_hash with at least one document of this run, as a checkpoint unit."""

    def prepare() -> str:
        con.execute("CREATE OR REPLACE TABLE exact_groups (exact_hash VARCHAR)")
        for part in range(partitions):  # slices of the hash space bound the aggregate's memory
            where = f"WHERE (hash(exact_hash) & {partitions - 1}) = {part}" if partitions > 1 else ""
            con.execute(f"""
                INSERT INTO exact_groups SELECT exact_hash FROM sigs {where}
                GROUP BY exact_hash HAVING count(*) > 1 AND bool_or(run_idx = 0)
            """)
        return "SELECT exact_hash FROM exact_groups"

    path, _ = checkpoints.query_unit(con, "exact-groups", prepare, _EXACT_GROUPS_SCHEMA)
    con.execute("DROP TABLE IF EXISTS exact_groups")
    return path


def _candidates(con: duckdb.DuckDBPyConnection, checkpoints: Checkpoints, bands: int, *, require_current: bool,
                partitions: int) -> dict:
    """`candidates(src, dst)`: the distinct star edges of every band, one checkpoint unit per band."""
    started = time.perf_counter()
    files, band_rows = [], 0
    for band in range(bands):

        def prepare(band: int = band) -> str:
            con.execute("CREATE OR REPLACE TABLE band_edges (src BIGINT, dst BIGINT)")
            band_edges(con, "keys", band, "band_edges", require_current, partitions)
            return "SELECT src, dst FROM band_edges"

        path, stats = checkpoints.query_unit(con, band_column(band).replace("_", "-"), prepare, _EDGE_SCHEMA)
        con.execute("DROP TABLE IF EXISTS band_edges")
        files.append(path)
        band_rows += stats["rows"]
    con.execute("CREATE OR REPLACE TABLE candidates AS "
                f"SELECT DISTINCT src, dst FROM read_parquet({sql_file_list(files)})")
    return {"band_edges": band_rows, "edges": scalar(con, "SELECT count(*) FROM candidates"),
            "partitions": partitions, "seconds": round(time.perf_counter() - started, 3)}


def _components(con: duckdb.DuckDBPyConnection, checkpoints: Checkpoints) -> dict:
    """`components(node, label)` of `kept_edges`, as a checkpoint unit."""

    def prepare() -> tuple[str, dict]:
        found = connected_components(con, "kept_edges", "components_new")
        return "SELECT node, label FROM components_new", {k: v for k, v in found.items() if k != "seconds"}

    path, stats = checkpoints.query_unit(con, "components", prepare, _COMPONENTS_SCHEMA)
    con.execute("DROP TABLE IF EXISTS components_new")
    con.execute(f"CREATE OR REPLACE TABLE components AS SELECT node, label FROM read_parquet({sql_str(str(path))})")
    return {k: v for k, v in stats.items() if k != "rows"}


def cluster_index(parts: list[IndexPart], config: DedupConfig, outputs: ClusterOutputs, *, cache_key: str,
                  work: Path, score_files: list[Path] | None = None) -> dict:
    """The global step over index files: exact groups, LSH candidates, optional verification,
    connected components and survivors, written to `outputs` (atomically, sorted, under `cache_key`).

    `parts` are this run's shards (run_idx 0) and any prior runs' (run_idx > 0); `score_files` hold
    `config.survivor_column` for the score rules. DuckDB works under `config.memory_limit`, spilling
    to `work`. Finished units are checkpointed in `work` under `cache_key`, so a call after a crash
    resumes from them; `work` is removed once the outputs are written. Returns statistics."""
    current = [p for p in parts if p.run_idx == 0]
    if not current:
        raise ValueError("cluster_index needs at least one shard of the run being deduplicated")
    documents = sum(pq.ParquetFile(p.signatures).metadata.num_rows for p in current)
    bands, _ = config.lsh_shape
    by_score = {"highest_score": "highest", "lowest_score": "lowest"}.get(config.survivor)
    spill = work / "duckdb-tmp"
    shutil.rmtree(spill, ignore_errors=True)  # a killed run's spill files; its checkpoints stay
    checkpoints = Checkpoints(checkpoint_dir(work), cache_key)
    started = time.perf_counter()
    stats: dict = {"documents": documents, "prior_runs": list(config.prior_runs),
                   "params": config.cluster_params(), "memory_limit": config.memory_limit}
    con = connect(spill, config.memory_limit, config.threads)
    try:
        _create_views(con, parts, bands, score_files or [], config.survivor_column)
        # Exact duplicates: groups of equal exact_hash with at least one document of this run.
        t0 = time.perf_counter()
        rows = sum(pq.ParquetFile(p.signatures).metadata.num_rows for p in parts)
        partitions = aggregate_partitions(rows)
        groups = _exact_groups(con, checkpoints, partitions)
        con.execute(f"""
            CREATE TABLE exact_members AS
            SELECT s.exact_hash AS label, s.node, s.doc_id, s.run_idx, sc.score
            FROM sigs s JOIN read_parquet({sql_str(str(groups))}) g USING (exact_hash)
            LEFT JOIN scores sc ON sc.doc_id = s.doc_id AND s.run_idx = 0
        """)
        _check_unique_nodes(con, "exact_members")
        rank_members(con, "exact_members", "exact_ranked", by_score=by_score)
        stats["exact"] = {**_summary(con, "exact_ranked"), "seconds": round(time.perf_counter() - t0, 3)}

        # Near duplicates: LSH candidates -> (verification) -> connected components -> survivors.
        stats["candidates"] = _candidates(con, checkpoints, bands, require_current=len(parts) > len(current),
                                          partitions=partitions)
        con.execute("""
            CREATE TABLE candidate_nodes AS
            SELECT node, doc_id, run_idx, filename FROM sigs
            WHERE node IN (SELECT src FROM candidates UNION SELECT dst FROM candidates)
        """)
        _check_unique_nodes(con, "candidate_nodes")
        if config.verify:
            stats["verify"] = verify_candidates(con, parts, ngram=config.ngram, threshold=config.threshold,
                                                checkpoints=checkpoints)
        else:
            con.execute("CREATE OR REPLACE TABLE candidates AS "
                        "SELECT src, dst, NULL::DOUBLE AS jaccard, true AS kept FROM candidates")
        con.execute("CREATE TABLE kept_edges AS SELECT src, dst FROM candidates WHERE kept")
        stats["components"] = _components(con, checkpoints)
        t0 = time.perf_counter()
        con.execute("""
            CREATE TABLE minhash_members AS
            SELECT c.label, n.node, n.doc_id, n.run_idx, sc.score
            FROM components c JOIN candidate_nodes n USING (node)
            LEFT JOIN scores sc ON sc.doc_id = n.doc_id AND n.run_idx = 0
        """)
        rank_members(con, "minhash_members", "minhash_ranked", by_score=by_score)
        stats["minhash"] = {**_summary(con, "minhash_ranked"),
                            "cluster_sizes": _size_histogram(con, "minhash_ranked", documents),
                            "survivor_seconds": round(time.perf_counter() - t0, 3)}
        stats["exact"]["cluster_sizes"] = _size_histogram(con, "exact_ranked", documents)
        stats["write_seconds"] = _write_outputs(con, outputs, cache_key)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    # Only now are the checkpoints worthless: a crash before this line resumes from them.
    shutil.rmtree(work, ignore_errors=True)
    stats["checkpoints"] = checkpoints.summary()
    stats["seconds"] = round(time.perf_counter() - started, 3)
    for kind in ("exact", "minhash"):
        stats[kind]["duplicate_rate"] = round(stats[kind]["duplicates"] / documents, 6) if documents else 0.0
    stats["cache_key"] = cache_key
    return stats


def _write_outputs(con: duckdb.DuckDBPyConnection, outputs: ClusterOutputs, cache_key: str) -> float:
    """The step's tables, sorted so that they do not depend on shard order; clusters last (it marks done)."""
    t0 = time.perf_counter()
    copy_query(con, """
        SELECT a.doc_id AS src_doc_id, ra.prior_run AS src_prior_run, b.doc_id AS dst_doc_id,
               rb.prior_run AS dst_prior_run, c.jaccard, c.kept
        FROM candidates c JOIN candidate_nodes a ON a.node = c.src JOIN candidate_nodes b ON b.node = c.dst
        JOIN runs ra ON ra.run_idx = a.run_idx JOIN runs rb ON rb.run_idx = b.run_idx
        ORDER BY dst_doc_id, dst_prior_run NULLS FIRST, src_doc_id, src_prior_run NULLS FIRST
    """, outputs.edges, EDGES_SCHEMA, cache_key)
    copy_query(con, """
        SELECT r.doc_id, ra.prior_run, r.label AS exact_hash, r.cluster_size AS exact_cluster_size,
               r.survivor_id AS exact_survivor_id, rs.prior_run AS exact_survivor_prior_run,
               r.is_duplicate AS exact_is_duplicate
        FROM exact_ranked r JOIN runs ra ON ra.run_idx = r.run_idx JOIN runs rs ON rs.run_idx = r.survivor_run_idx
        ORDER BY exact_hash, r.doc_id, ra.prior_run NULLS FIRST
    """, outputs.exact_clusters, EXACT_CLUSTERS_SCHEMA, cache_key)
    copy_query(con, """
        SELECT r.doc_id, ra.prior_run, r.cluster_id, r.cluster_size, r.survivor_id,
               rs.prior_run AS survivor_prior_run, r.is_duplicate
        FROM minhash_ranked r JOIN runs ra ON ra.run_idx = r.run_idx JOIN runs rs ON rs.run_idx = r.survivor_run_idx
        ORDER BY r.cluster_id, r.doc_id, ra.prior_run NULLS FIRST
    """, outputs.clusters, CLUSTERS_SCHEMA, cache_key)
    return round(time.perf_counter() - t0, 3)
