"""Find and read a run's embedding sidecars (written by `thresher.scorers.apply.score_shard`,
which reads the embedding scorer's `input_columns`)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.embeddings.scorer import EmbeddingScorer, arrow_to_vectors, vectors_to_arrow
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import scorer_key
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir


class StaleEmbeddingsError(FileNotFoundError):
    """Embeddings missing for some shard, or written by other settings than those asked for."""


def embedding_parts(run: RunDir, scorer: EmbeddingScorer, table: str | None = None) -> list[tuple[str, str, str]]:
    """(table, shard_id, sidecar path) of every data shard (of `table`, or all), each checked to
    hold embeddings written by exactly these settings; raises StaleEmbeddingsError otherwise."""
    parts, stale = [], []
    for data_table, shard_id, _ in run.data_parts():
        if table is not None and data_table != table:
            continue
        path = run.score_part(scorer_key(scorer), shard_id)
        if read_cache_key(path) != score_cache_key(run, scorer, data_table, shard_id):
            stale.append(shard_id)
        parts.append((data_table, shard_id, str(path)))
    if stale:
        raise StaleEmbeddingsError(
            f"{len(stale)} shard(s) of {run.root} lack embeddings {scorer_key(scorer)} with these settings "
            f"(e.g. {stale[0]}): run `thresher embeddings embed` (or the embed flow) with the same settings first")
    if not parts:
        raise StaleEmbeddingsError(f"{run.root} has no {table or 'data'} shards: run `thresher ingest` first")
    return parts


def iter_vectors(paths: list[str], vector_column: str, batch_rows: int = 8192,
                 ) -> Iterator[tuple[list[str], np.ndarray]]:
    """(doc_ids, (n, d) float32 unit vectors) of every non-null embedding in the sidecar files,
    in file order, `batch_rows` rows at a time."""
    for path in paths:
        source = pq.ParquetFile(path)
        for batch in source.iter_batches(batch_size=batch_rows, columns=["doc_id", vector_column]):
            vectors, valid = arrow_to_vectors(batch.column(1))
            doc_ids = batch.column(0).to_pylist()
            if not valid.all():
                doc_ids = [d for d, ok in zip(doc_ids, valid) if ok]
                vectors = vectors[valid]
            yield doc_ids, vectors


def count_rows(paths: list[str]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def vector_table(doc_ids: list[str], vectors: np.ndarray, column: str = "vector") -> pa.Table:
    return pa.table({"doc_id": pa.array(doc_ids, pa.string()), column: vectors_to_arrow(vectors)})



def seeded_sample(paths: list[str], column: str, limit: int, rows: int, seed: int, stream: str
                  ) -> tuple[list[str], np.ndarray]:
    """At most `limit` embedded rows, chosen by a seeded hash of doc_id (so independent of shard
    order and batch size), sorted by doc_id; `rows` (the total) sets the sampling rate."""
    from thresher.dsir.resample import uniform_noise

    rate = min(1.0, 1.25 * limit / max(rows, 1))
    ids: list[str] = []
    noise_parts, vector_parts = [], []
    for doc_ids, vectors in iter_vectors(paths, column):
        noise = uniform_noise(doc_ids, seed, stream)
        keep = noise < rate
        ids += [d for d, k in zip(doc_ids, keep) if k]
        noise_parts.append(noise[keep])
        vector_parts.append(vectors[keep])
    if not ids:
        return [], np.zeros((0, 0), np.float32)
    noise = np.concatenate(noise_parts)
    vectors = np.concatenate(vector_parts)
    chosen = np.argsort(noise, kind="stable")[:limit]
    order = sorted(chosen.tolist(), key=lambda i: ids[i])
    return [ids[i] for i in order], vectors[order]
