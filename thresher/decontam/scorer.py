"""`decontam@1`: word n-gram overlap between each document and a set of benchmarks.

Columns:
- `decontam_overlap` (int32): how many of the document's n-gram positions occur in any benchmark
  (a repeated n-gram counts at each position; 0 for a text of fewer than n words);
- `decontam_coverage` (float32): the share of the document's normalised words that lie inside a
  matched n-gram (0 to 1);
- `decontam_benchmark` (string): the benchmark with the most matched positions (the first listed
  on a tie), null when nothing matched.

Normalisation and hashing: thresher.decontam.ngrams (lm-evaluation-harness style). Indexes:
thresher.decontam.index, built once per benchmark content in the driver (`prepare`) and
memory-mapped by every worker on first use. The whole batch is looked up at once: its n-gram
hashes are sorted and `np.searchsorted` into each benchmark's sorted array.

The scorer's parameters carry the benchmarks' index keys (content fingerprints, computed when it
is built), so a changed benchmark file changes the sidecar's cache key and the run is re-scored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from thresher.decontam.config import DEFAULT_N, BenchmarkSpec, parse_benchmarks
from thresher.decontam.index import benchmark_shards, default_cache_dir, ensure_index, index_key, load_index
from thresher.decontam.ngrams import BatchNgrams, batch_ngrams
from thresher.scorers.base import ScorerBase

_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("decontam_overlap", pa.int32()),
    pa.field("decontam_coverage", pa.float32()),
    pa.field("decontam_benchmark", pa.string()),
])

# Memory-mapped indexes of this process, by (cache dir, key); never pickled with a scorer.
_loaded: dict[tuple[str, str], np.ndarray] = {}


def contains_sorted(index: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which of `hashes` are in the sorted array `index` (a boolean per hash, in order)."""
    if index.size == 0 or hashes.size == 0:
        return np.zeros(hashes.size, dtype=bool)
    order = np.argsort(hashes)
    ordered = hashes[order]
    # Sorted keys walk the (memory-mapped) index forwards, touching each page at most once.
    positions = np.minimum(np.searchsorted(index, ordered), index.size - 1)
    found = np.empty(hashes.size, dtype=bool)
    found[order] = index[positions] == ordered
    return found


@dataclass(frozen=True)
class Overlap:
    overlap: np.ndarray  # int32 per text
    coverage: np.ndarray  # float32 per text
    best: list[int | None]  # index of the benchmark with most matches, per text


def overlap_of(grams: BatchNgrams, indexes: list[np.ndarray]) -> Overlap:
    """Per text of the batch: matched n-gram positions, covered share of words, best benchmark."""
    texts = grams.word_counts.size
    per_benchmark = np.zeros((len(indexes), texts), dtype=np.int64)
    any_hit = np.zeros(grams.hashes.size, dtype=bool)
    for b, index in enumerate(indexes):
        hit = contains_sorted(index, grams.hashes)
        any_hit |= hit
        per_benchmark[b] = np.bincount(grams.text_of[hit], minlength=texts)
    overlap = np.bincount(grams.text_of[any_hit], minlength=texts)
    # Words inside a matched n-gram: +1 at each match's first word, -1 after its last, then a prefix sum.
    starts = grams.start[any_hit]
    size = grams.total_words + 1
    delta = np.bincount(starts, minlength=size) - np.bincount(starts + grams.n, minlength=size)
    covered = np.cumsum(delta[:-1]) > 0
    covered_words = np.bincount(grams.text_of_word, weights=covered, minlength=texts)
    coverage = np.divide(covered_words, grams.word_counts, out=np.zeros(texts), where=grams.word_counts > 0)
    best_index = per_benchmark.argmax(axis=0) if indexes else np.zeros(texts, dtype=np.int64)
    best = [int(b) if hits else None for b, hits in zip(best_index, overlap)]
    return Overlap(overlap.astype(np.int32), coverage.astype(np.float32), best)


@dataclass(frozen=True)
class DecontaminationScorer(ScorerBase):
    """N-gram overlap of each document with the benchmarks (see the module doc)."""

    name: ClassVar[str] = "decontam"
    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = tuple(_SCHEMA.names[1:])

    benchmarks: list[str | dict[str, Any]]
    """Benchmark files (a path, glob, directory or hf://datasets/...) or {name, paths, fields, format}."""
    n: int = DEFAULT_N
    """Words per n-gram."""
    cache_dir: str | None = None
    """Where indexes are cached; default $THRESHER_CACHE/decontam (else ~/.cache/thresher/decontam)."""
    index_keys: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        specs = parse_benchmarks(self.benchmarks)
        # Content identity of every benchmark: part of the parameters, hence of the cache key.
        object.__setattr__(self, "index_keys", tuple(index_key(s, self.n, benchmark_shards(s)) for s in specs))

    @property
    def output_schema(self) -> pa.Schema:
        return _SCHEMA

    @property
    def specs(self) -> list[BenchmarkSpec]:
        return parse_benchmarks(self.benchmarks)

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def prepare(self) -> None:
        """Build the missing indexes once, in the driver, before any worker needs them."""
        self.indexes()

    def indexes(self) -> list[np.ndarray]:
        root = self.cache_root
        arrays = []
        for spec, key in zip(self.specs, self.index_keys):
            loaded = _loaded.get((str(root), key))
            if loaded is None:
                path, _built = ensure_index(spec, self.n, root, key)
                loaded = _loaded[(str(root), key)] = load_index(path)
            arrays.append(loaded)
        return arrays

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        indexes = self.indexes()
        grams = batch_ngrams(batch.column("text").to_pylist(), self.n)
        found = overlap_of(grams, indexes)
        labels = [spec.label for spec in self.specs]
        return pa.RecordBatch.from_arrays([
            batch.column("doc_id"),
            pa.array(found.overlap, pa.int32()),
            pa.array(found.coverage, pa.float32()),
            pa.array([labels[b] if b is not None else None for b in found.best], pa.string()),
        ], schema=_SCHEMA)
