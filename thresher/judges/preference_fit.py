"""Judge configurations combined with weights learned on preference labels (issue 15, item 4).

Several small judges and cheap signals err in different places; a Bradley–Terry model learns how
much each one's vote is worth. For a pair, each member gives a score to both replies; the feature
is the difference of the two (after `transform`: characters become log characters), divided by the
spread of that member's differences on the fitting pairs, so the weights compare. P(chosen wins) =
sigmoid(w · x), fitted by L2-regularised logistic regression on both orientations of every fitting
pair (x with label 1 and -x with label 0: no intercept is learnable, so neither reply position is
favoured). A pair where a member gave no score contributes 0 for that member.

Fitted on one split (`tune`) and reported on another (`heldout`): the fitted weights are the
result of the bench, not constants anywhere in the product. `thresher judge composite --method
logistic` is the same idea on a run's scores with labels per row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thresher.judges.agreement import (
    AgreementConfig,
    ConfigResult,
    PairScores,
    PreferencePair,
    pair_outcomes,
    select,
    set_result,
)
from thresher.judges.fitting import logistic_fit

FIT_L2 = 1e-2  # a handful of features and ~50-150 pairs: enough to keep separable fits finite


@dataclass(frozen=True)
class BradleyTerryFit:
    members: tuple[str, ...]
    kinds: tuple[str, ...]
    scales: tuple[float, ...]  # spread of each member's transformed differences on the fitting pairs
    weights: tuple[float, ...]
    fit_pairs: int
    fit_agreement: float  # on the fitting pairs themselves (optimistic; report the other split)

    def describe(self) -> str:
        terms = ", ".join(f"{m} {w:+.2f}" for m, w in zip(self.members, self.weights))
        return f"weights per spread: {terms} (fitted on {self.fit_pairs} pairs, {self.fit_agreement:.1%} there)"


def transform(kind: str, value: float | None) -> float | None:
    """Lengths are compared as log characters (a 2x longer reply is the same step at any size)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return math.log1p(value) if kind == "length" else float(value)


def _difference(kind: str, scores: PairScores) -> float:
    chosen, rejected = transform(kind, scores[0]), transform(kind, scores[1])
    return 0.0 if chosen is None or rejected is None else chosen - rejected


def _features(members: Sequence[ConfigResult], kinds: Sequence[str], ids: Sequence[str]) -> np.ndarray:
    return np.array([[_difference(k, m.scores.get(i, (None, None))) for m, k in zip(members, kinds)] for i in ids],
                    dtype=float).reshape(len(ids), len(members))


def fit_bradley_terry(members: Sequence[ConfigResult], configs: Sequence[AgreementConfig],
                      fit_pairs: Sequence[PreferencePair], l2: float = FIT_L2) -> BradleyTerryFit:
    """Weights for `members` (results of `configs`, same order) from the labels of `fit_pairs`."""
    if not members:
        raise ValueError("a composite needs at least one member configuration")
    ids = [p.id for p in fit_pairs]
    absent = [m.config for m in members if any(i not in m.scores for i in ids)]
    if absent:
        raise ValueError(f"members {absent} were not run on every fitting pair: evaluate them on the fit split too")
    kinds = [c.kind for c in configs]
    x = _features(members, kinds, ids)
    scales = x.std(axis=0)
    scales[scales == 0] = 1.0
    x = x / scales
    weights, _ = logistic_fit(np.vstack([x, -x]), np.r_[np.ones(len(ids)), np.zeros(len(ids))], l2=l2)
    fit_outcomes = pair_outcomes(list(x @ weights), [0.0] * len(ids))
    return BradleyTerryFit(tuple(m.config for m in members), tuple(kinds), tuple(float(s) for s in scales),
                           tuple(float(w) for w in weights), len(ids), float(np.mean(fit_outcomes)))


def composite_scores(fit: BradleyTerryFit, members: Sequence[ConfigResult],
                     ids: Sequence[str]) -> dict[str, PairScores]:
    """(w · x, 0) per pair: the chosen reply wins where the fitted logit is positive."""
    x = _features(members, fit.kinds, ids) / np.asarray(fit.scales)
    logits = x @ np.asarray(fit.weights)
    return {i: (float(v), 0.0) for i, v in zip(ids, logits)}


def composite_result(name: str, fit: BradleyTerryFit, members: Sequence[ConfigResult],
                     pairs: Sequence[PreferencePair], subsets: Sequence[str], limit: int | None = None) -> ConfigResult:
    """The fitted composite's agreement on each subset, as any configuration's result (its rows/s
    counts the time of every member: each has to run on every reply)."""
    chosen = {s: select(pairs, s)[:limit] for s in subsets}
    ids = sorted({p.id for s in subsets for p in chosen[s]})
    scores = composite_scores(fit, members, ids)
    outcomes = dict(zip(ids, pair_outcomes([scores[i][0] for i in ids], [scores[i][1] for i in ids])))
    sets = tuple(set_result(s, chosen[s], outcomes, set()) for s in subsets)
    replies = max((m.judgments for m in members), default=0)
    return ConfigResult(name, sets, None, None, replies, sum(m.seconds for m in members), scores)
