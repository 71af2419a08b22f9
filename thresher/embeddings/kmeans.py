"""Seeded spherical k-means in numpy (cosine similarity on unit vectors), for SemDeDup.

Deterministic: the training sample comes in a fixed order (callers sort it by doc_id), the initial
centroids are chosen by seeded k-means++ (each next one drawn with probability proportional to its
squared cosine distance to the nearest one chosen), ties go to the lower cluster index, and an
empty cluster is re-seeded with the point farthest from its own centroid. Training sees a bounded
sample; assigning every row afterwards streams (`assign`), so the number of rows is not bounded by
memory.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 16_384


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centroid index int32, cosine similarity to it float32) of each row of x."""
    labels = np.empty(len(x), dtype=np.int32)
    sims = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), _BLOCK):
        s = x[start : start + _BLOCK] @ centroids.T
        best = np.argmax(s, axis=1)
        labels[start : start + _BLOCK] = best
        sims[start : start + _BLOCK] = s[np.arange(len(s)), best]
    return labels, sims


def _normalise(c: np.ndarray) -> np.ndarray:
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k initial centroids by k-means++ seeding (Arthur & Vassilvitskii 2007) on cosine distance."""
    rng = np.random.default_rng(seed)
    n = len(x)
    chosen = [int(rng.integers(n))]
    distance = np.maximum(1.0 - x @ x[chosen[0]], 0.0) ** 2
    for _ in range(1, k):
        total = float(distance.sum())
        if total <= 0:  # every point coincides with a centroid: take unused points in order
            unused = np.setdiff1d(np.arange(n), chosen)[: k - len(chosen)]
            chosen += unused.tolist()
            break
        pick = int(np.searchsorted(np.cumsum(distance), rng.random() * total, side="right"))
        pick = min(pick, n - 1)
        chosen.append(pick)
        np.minimum(distance, np.maximum(1.0 - x @ x[pick], 0.0) ** 2, out=distance)
    return x[chosen].copy()


def spherical_kmeans(x: np.ndarray, k: int, *, iterations: int = 20, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Unit-norm centroids (k, d) of the unit rows of `x`, and training statistics."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n == 0:
        raise ValueError("k-means needs at least one vector")
    k = min(k, n)
    centroids = kmeans_plus_plus(x, k, seed)
    labels = np.full(n, -1, dtype=np.int32)
    rounds = 0
    for iteration in range(1, iterations + 1):
        rounds = iteration
        new_labels, sims = assign(x, centroids)
        changed = int((new_labels != labels).sum())
        labels = new_labels
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        counts = np.bincount(labels, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            # re-seed each empty cluster with a distinct point far from its centroid
            far = np.argsort(sims, kind="stable")[: len(empty)]
            sums[empty] = x[far]
        centroids = _normalise(sums)
        if changed == 0:
            break
    labels, sims = assign(x, centroids)
    inertia = float((1.0 - sims).sum())
    return centroids, {"k": k, "trained_on": n, "iterations": rounds, "mean_similarity": float(sims.mean()),
                       "inertia": round(inertia, 4)}
