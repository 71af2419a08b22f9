"""Run-wide percentiles of a classifier's score (Nemotron-CC bins its classifier scores by
percentile of the corpus): a second sidecar, written after every shard is scored.

    scores/classifier_<name>_pct@1/part-<shard>.parquet    doc_id, classifier_<name>_pct

`classifier_<name>_pct` is 100 x the share of the run's scored rows whose score is strictly lower
(ties share a value), a float in [0, 100): `classifier_<name>_pct >= 90` keeps the top ~10 %
of rows. Being a sidecar, it joins `<table>_scored` like any score, so selection SQL reads it
directly. One global pass holds every score of the table as float32 (4 bytes a row: 400 MB for
100M rows) and a second pass writes the shards. The cache key of each part is over the cache keys
of every score part it was ranked among, so rescoring any shard rewrites every part.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.classifier.scorer import ClassifierError, ClassifierScorer
from thresher.scorers.base import scorer_key
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key
from thresher.storage.run_dir import RunDir

PERCENTILE_VERSION = "1"


def percentile_key(scorer: ClassifierScorer) -> str:
    return f"{scorer.name}_pct@{PERCENTILE_VERSION}"


def percentile_column(scorer: ClassifierScorer) -> str:
    return f"{scorer.name}_pct"


def percentile_schema(scorer: ClassifierScorer) -> pa.Schema:
    return pa.schema([pa.field("doc_id", pa.string(), nullable=False),
                      pa.field(percentile_column(scorer), pa.float32())])


def table_shards(run: RunDir, table: str) -> list[str]:
    return [shard for t, shard, _ in run.data_parts() if t == table]


def percentile_cache_key(run: RunDir, scorer: ClassifierScorer, table: str) -> str:
    """Over the cache keys of every score part of `table` (each names the model and the shard's content)."""
    digest = hashlib.blake2b(digest_size=12)
    for shard in table_shards(run, table):
        key = read_cache_key(run.score_part(scorer_key(scorer), shard))
        if key is None:
            raise ClassifierError(f"{run.score_part(scorer_key(scorer), shard)} is missing: score the run first")
        digest.update(f"{shard}\x1f{key}\x1e".encode())
    return f"{percentile_key(scorer)}<-{digest.hexdigest()}"


def percentiles_done(run: RunDir, scorer: ClassifierScorer, table: str, cache_key: str) -> bool:
    return all(read_cache_key(run.score_part(percentile_key(scorer), shard)) == cache_key
               for shard in table_shards(run, table))


def percentile_of(sorted_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """100 x the share of `sorted_scores` strictly below each score."""
    if not len(sorted_scores):
        return np.full(len(scores), np.nan)
    return 100.0 * np.searchsorted(sorted_scores, scores, side="left") / len(sorted_scores)


def write_percentiles(run: RunDir, scorer: ClassifierScorer, table: str) -> dict:
    """Rank every scored row of `table` among all of them and write the percentile sidecar."""
    cache_key = percentile_cache_key(run, scorer, table)
    shards = table_shards(run, table)
    column = scorer.score_column

    def scores_of(shard: str) -> pa.Table:
        return pq.read_table(run.score_part(scorer_key(scorer), shard), columns=["doc_id", column])

    collected = [scores_of(shard).column(column).drop_null().to_numpy() for shard in shards]
    sorted_scores = np.sort(np.concatenate(collected).astype(np.float32)) if collected else np.empty(0, np.float32)
    for shard in shards:
        scored = scores_of(shard)
        values = scored.column(column)
        pct = percentile_of(sorted_scores, values.fill_null(0.0).to_numpy().astype(np.float32))
        mask = values.is_null().to_numpy(zero_copy_only=False)
        with AtomicParquetWriter(run.score_part(percentile_key(scorer), shard), percentile_schema(scorer),
                                 cache_key) as writer:
            writer.write(pa.record_batch([scored.column("doc_id").combine_chunks(),
                                          pa.array(pct.astype(np.float32), pa.float32(), mask=mask)],
                                         schema=percentile_schema(scorer)))
    quantiles = ({f"p{q}": float(np.quantile(sorted_scores, q / 100)) for q in (10, 50, 90, 99)}
                 if len(sorted_scores) else {})
    return {"scorer": percentile_key(scorer), "table": table, "shards": len(shards),
            "rows": int(len(sorted_scores)), "score_quantiles": quantiles, "cache_key": cache_key}
