"""Optional verification of LSH candidate pairs by their exact Jaccard similarity.

LSH admits pairs below the threshold with the probability its S-curve gives (e.g. 21 % of pairs at
Jaccard 0.6 with 14 x 8). Verification re-reads the text of every document that is an endpoint of a
candidate edge (one pass over each data shard that holds one), computes its distinct 64-bit shingle
set, and keeps an edge only if |A & B| / |A | B| >= threshold. Edges are stars to the bucket minimum,
so a document is checked against its bucket's anchor, as NeMo Curator's false-positive check does.

Out of core: the shingle sets go to Parquet in the work directory; DuckDB joins them to the edges
and streams the pairs back in batches, whose intersections are counted with one sort per batch.
An edge whose endpoint's text cannot be read (a prior run's data deleted) is kept and counted as
unverifiable. Each shard's shingle sets and the scored pairs are checkpoint units (see
`thresher.dedup.checkpoint`): a killed verification resumes at the first shard it had not read.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.dedup.checkpoint import Checkpoints
from thresher.dedup.cluster import scalar, sql_str
from thresher.dedup.index import IndexPart
from thresher.dedup.minhash import shingle_batch, text_slices
from thresher.storage.parquet_io import AtomicParquetWriter

_SHINGLES_SCHEMA = pa.schema([pa.field("node", pa.int64(), nullable=False),
                              pa.field("shingles", pa.large_list(pa.uint64()), nullable=False)])
_JACCARD_SCHEMA = pa.schema([pa.field("src", pa.int64()), pa.field("dst", pa.int64()),
                             pa.field("jaccard", pa.float64())])
_READ_ROWS = 1024
_PAIR_ROWS = 4096


def _write_shingle_sets(part: IndexPart, wanted: dict[str, int], ngram: int, out: Path, key: str) -> int:
    """Write (node, sorted distinct shingles) of the wanted doc_ids of one data part; returns rows."""
    wanted_ids = pa.array(list(wanted), type=pa.string())
    rows = 0
    with AtomicParquetWriter(out, _SHINGLES_SCHEMA, key) as writer:
        for batch in pq.ParquetFile(part.data).iter_batches(batch_size=_READ_ROWS, columns=["doc_id", "text"]):
            mask = pc.is_in(batch.column("doc_id"), value_set=wanted_ids)
            if not pc.any(mask).as_py():
                continue
            picked = batch.filter(mask)
            nodes, sets = [], []
            for start, stop in text_slices(picked.column("text")):
                shingles = shingle_batch(picked.column("text").slice(start, stop - start), ngram)
                for d, doc_id in enumerate(picked.column("doc_id").slice(start, stop - start).to_pylist()):
                    nodes.append(wanted[doc_id])
                    sets.append(shingles.doc_set(d))
            lengths = np.array([len(s) for s in sets], dtype=np.int64)
            offsets = np.zeros(len(sets) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            values = np.concatenate(sets) if sets else np.zeros(0, np.uint64)
            column = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint64()))
            writer.write(pa.RecordBatch.from_arrays([pa.array(nodes, pa.int64()), column],
                                                    schema=writer.schema))
            rows += len(nodes)
    return rows


def batch_jaccard(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Row-wise Jaccard of two list<uint64> columns of sorted distinct values, one sort per batch."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    n = len(a)
    len_a = pc.list_value_length(a).to_numpy(zero_copy_only=False).astype(np.int64)
    len_b = pc.list_value_length(b).to_numpy(zero_copy_only=False).astype(np.int64)
    values = np.concatenate([pc.list_flatten(a).to_numpy(), pc.list_flatten(b).to_numpy()])
    rows = np.concatenate([np.repeat(np.arange(n), len_a), np.repeat(np.arange(n), len_b)])
    order = np.lexsort((values, rows))
    values, rows = values[order], rows[order]
    shared = (rows[1:] == rows[:-1]) & (values[1:] == values[:-1])
    intersection = np.bincount(rows[1:][shared], minlength=n)
    union = len_a + len_b - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def verify_candidates(con: duckdb.DuckDBPyConnection, parts: list[IndexPart], *, ngram: int, threshold: float,
                      checkpoints: Checkpoints, candidates: str = "candidates",
                      nodes: str = "candidate_nodes") -> dict:
    """Add `jaccard` and `kept` to `candidates(src, dst)`.

    `nodes(node, doc_id, filename)` maps every endpoint to its document and signature file."""
    started = time.perf_counter()
    part_of = {str(p.signatures): p for p in parts}
    files, readable = [], 0
    filenames = [r[0] for r in con.execute(f"SELECT DISTINCT filename FROM {nodes} ORDER BY 1").fetchall()]
    for filename in filenames:
        part = part_of[filename]
        if not part.data.is_file():
            continue

        def shingle_sets(out: Path, key: str, part: IndexPart = part, filename: str = filename) -> dict:
            # one shard's endpoints at a time: memory follows the largest shard, not the whole graph
            wanted = dict(con.execute(f"SELECT doc_id, node FROM {nodes} WHERE filename = ?", [filename]).fetchall())
            return {"rows": _write_shingle_sets(part, wanted, ngram, out, key)}

        # named by the shard, not by `i`: a run moved between a kill and its resume sorts its
        # signature files differently
        path, stats = checkpoints.unit(f"shingles-{part.run_idx}-{part.shard_id}", shingle_sets)
        readable += stats["rows"]
        files.append(path)

    def score_pairs(out: Path, key: str) -> dict:
        with AtomicParquetWriter(out, _JACCARD_SCHEMA, key) as writer:
            if files:
                listing = "[" + ", ".join(sql_str(str(f)) for f in files) + "]"
                reader = con.sql(f"""
                    SELECT c.src, c.dst, a.shingles AS sa, b.shingles AS sb
                    FROM {candidates} c
                    JOIN read_parquet({listing}) a ON a.node = c.src
                    JOIN read_parquet({listing}) b ON b.node = c.dst
                """).to_arrow_reader(_PAIR_ROWS)
                # The connection is busy until the reader is drained: results stream to Parquet.
                for batch in reader:
                    jac = batch_jaccard(batch.column("sa"), batch.column("sb"))
                    writer.write(pa.RecordBatch.from_arrays(
                        [batch.column("src"), batch.column("dst"), pa.array(jac, pa.float64())], schema=writer.schema))
        return {"rows": writer.rows}

    scored, _ = checkpoints.unit("jaccard", score_pairs)
    con.execute(f"CREATE OR REPLACE TABLE verified AS SELECT * FROM read_parquet({sql_str(str(scored))})")
    con.execute(f"""
        CREATE OR REPLACE TABLE {candidates} AS
        SELECT c.src, c.dst, v.jaccard, coalesce(v.jaccard >= {float(threshold)!r}, true) AS kept
        FROM {candidates} c LEFT JOIN verified v USING (src, dst)
    """)
    con.execute("DROP TABLE verified")
    return {
        "documents_reread": readable,
        "edges_dropped": scalar(con, f"SELECT count(*) FROM {candidates} WHERE NOT kept"),
        "edges_unverifiable": scalar(con, f"SELECT count(*) FROM {candidates} WHERE jaccard IS NULL"),
        "seconds": round(time.perf_counter() - started, 3),
    }
