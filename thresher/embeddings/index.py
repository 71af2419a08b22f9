"""The kept-set index of diversity selection: "how similar is this row to anything kept so far?"

DEITA's rule interleaves searches and additions: each batch of candidates is checked against
every row kept before it, and the rows it keeps are added before the next batch is checked. The
kept set can outgrow memory (selecting 10M rows of 384 float32 dimensions is 15 GB), so it lives
in an approximate index that can grow on disk.

Library: faiss-cpu. Why, against the alternatives that install here:

- growth on disk: an IVF index whose codes are 8-bit scalar-quantised (one byte per dimension,
  a quarter of float32) and whose inverted lists are `OnDiskInvertedLists` (one memory-mapped file
  that grows as rows are kept): RAM holds the coarse centroids and whatever pages the OS caches.
  HNSW graphs (hnswlib, usearch, faiss HNSW) keep graph and vectors in memory while they grow;
  usearch can memory-map a saved index (`view`), but a viewed index takes no additions, and
  hnswlib needs its capacity up front.
- determinism: IVF assignment is exact given the centroids, the centroids are trained with a seed
  on a seeded sample, and a search with a fixed `nprobe` is a pure function of the index; HNSW
  insertion with several threads is not reproducible.
- the same library has exact flat search (the default for up to `flat_max_rows` candidates) and
  GPU builds with the same API.

Approximation: with IVF, a candidate is compared only with the kept rows in its `nprobe` nearest
lists, so a near-duplicate in another list can be missed (both rows kept); the report counts kept
pairs above the threshold in a sample, and `ivf_probe` trades speed for recall.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """faiss' on-disk lists print 'resizing ...' with C printf whenever their file grows."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


class KeptIndex:
    """Inner-product (= cosine on unit vectors) index over the rows kept so far."""

    kind = "flat"

    def __init__(self, dimension: int):
        import faiss

        self.dimension = dimension
        self.index = faiss.IndexFlatIP(dimension)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        """Highest similarity of each row to any indexed row (-inf while the index is empty)."""
        if self.size == 0 or len(vectors) == 0:
            return np.full(len(vectors), -np.inf, dtype=np.float32)
        sims, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        out = sims[:, 0].astype(np.float32)
        out[ids[:, 0] < 0] = -np.inf  # nothing found in the probed lists
        return out

    def describe(self) -> dict:
        return {"kind": self.kind, "rows": self.size}

    def close(self) -> None:
        pass


class IvfKeptIndex(KeptIndex):
    """IVF with 8-bit scalar-quantised codes; inverted lists in a memory-mapped file when `path` is given."""

    kind = "ivf"

    def __init__(self, dimension: int, training: np.ndarray, *, lists: int, probe: int, seed: int,
                 path: Path | None = None):
        import faiss

        self.dimension = dimension
        lists = max(1, min(lists, len(training)))
        self.quantizer = faiss.IndexFlatIP(dimension)
        self.index = faiss.IndexIVFScalarQuantizer(self.quantizer, dimension, lists, faiss.ScalarQuantizer.QT_8bit,
                                                   faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = seed
        self.index.train(np.ascontiguousarray(training, dtype=np.float32))
        self.index.nprobe = min(probe, lists)
        self.path = path
        self.invlists = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            self.invlists = faiss.OnDiskInvertedLists(lists, self.index.code_size, str(path))
            self.index.replace_invlists(self.invlists, False)  # we keep ownership: freed once, by Python
        self.lists, self.probe = lists, self.index.nprobe
        self._next_id = 0

    def add(self, vectors: np.ndarray) -> None:
        if not len(vectors):
            return
        ids = np.arange(self._next_id, self._next_id + len(vectors), dtype=np.int64)
        self._next_id += len(vectors)
        with _quiet_stdout() if self.invlists is not None else contextlib.nullcontext():
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def describe(self) -> dict:
        return {"kind": self.kind, "rows": self.size, "lists": self.lists, "probe": self.probe,
                "on_disk": self.path is not None,
                "bytes_on_disk": self.path.stat().st_size if self.path is not None and self.path.exists() else 0}

    def close(self) -> None:
        self.index = None
        self.invlists = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
