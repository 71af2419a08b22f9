"""Small, deterministic model fitting in numpy for judge calibration and composite scores: isotonic
regression (pool adjacent violators), L2-regularised logistic regression (Newton's method), the
probability metrics they are judged by, and a seeded split that keeps a group's rows together.

No scikit-learn: it is not a dependency of the judge extra, and every fitted model here must be
written down as a handful of JSON numbers that reproduce it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Log-loss of a probability of exactly 0 or 1 that turns out wrong is infinite; metrics clip to this.
METRIC_EPS = 1e-6


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Non-decreasing least-squares fit of y on x (pool adjacent violators).

    Returns knots (xs, ys): xs strictly increasing, ys non-decreasing; `isotonic_predict`
    interpolates linearly between them and holds the end values outside.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) == 0:
        raise ValueError("isotonic fit of no points")
    # Equal x must get one value: start from one block per distinct x.
    xs, inverse = np.unique(x, return_inverse=True)
    weight = np.bincount(inverse).astype(float)
    total = np.bincount(inverse, weights=y)
    blocks: list[list[float]] = []  # [sum of y, weight, number of distinct x merged]
    for s, w in zip(total, weight):
        blocks.append([s, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s2, w2, n2 = blocks.pop()
            blocks[-1][0] += s2
            blocks[-1][1] += w2
            blocks[-1][2] += n2
    ys = np.repeat([b[0] / b[1] for b in blocks], [b[2] for b in blocks])
    return xs.tolist(), ys.tolist()


def isotonic_predict(xs: Sequence[float], ys: Sequence[float], x: Sequence[float]) -> np.ndarray:
    return np.interp(np.asarray(x, dtype=float), np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))  # no overflow for large |z|


def logistic_fit(features: np.ndarray, y: Sequence[float], *, l2: float = 1e-3,
                 max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of P(y=1) = sigmoid(X w + b), L2 penalty `l2`·|w|² (not on b).

    Newton's method from zero: deterministic, and the penalty keeps separable data finite.
    """
    X = np.asarray(features, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    t = np.asarray(y, dtype=float)
    n, k = X.shape
    if n == 0:
        raise ValueError("logistic fit of no rows")
    A = np.hstack([X, np.ones((n, 1))])
    penalty = np.diag([2.0 * l2] * k + [0.0])
    theta = np.zeros(k + 1)
    for _ in range(max_iter):
        p = sigmoid(A @ theta)
        gradient = A.T @ (p - t) / n + penalty @ theta
        hessian = (A.T * (p * (1 - p))) @ A / n + penalty + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta[:k], float(theta[k])


def brier(p: Sequence[float], y: Sequence[float]) -> float:
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    return float(np.mean((p - y) ** 2))


def log_loss(p: Sequence[float], y: Sequence[float]) -> float:
    p = np.clip(np.asarray(p, dtype=float), METRIC_EPS, 1 - METRIC_EPS)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def group_holdout(groups: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of held-out rows: a seeded `fraction` of the distinct groups, all rows of a
    group on the same side (a real answer and its degraded copy share a doc_id and must not be
    split between fitting and evaluation)."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    distinct = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(distinct))
    n_out = max(1, round(fraction * len(distinct)))
    held = {distinct[i] for i in order[:n_out]}
    return np.array([g in held for g in groups], dtype=bool)
