"""DSIR importance weights as a thresher Scorer, and the numerics around them.

A document's log importance weight toward target t is  sum_b count_b(doc) * log_ratio[t, b]
(the reference's `np.dot(log_diff, counts)`), computed for a batch at once as one `np.bincount`
over the flat feature ids. The sidecar `scores/dsir@<version>/` holds, per document:

    dsir_num_tokens              the reference's example length, (features + n(n-1)/2) // n,
                                 i.e. the number of word-punct tokens for n = 2
    dsir_<target>_log_weight     float64 log importance weight, one column per target

Scoring is not filtering: the reference's minimum-length rule (`min_example_length`, default 100
tokens) is applied by selection, through `passes_min_length`, so the threshold can change without
re-scoring.

Dynamic range (p-lambda/dsir issue #12: weights spanning 1e-52 .. 1e40): log weights grow linearly
with document length, so `exp(log_weight)` under- and overflows float64 for ordinary documents.
Nothing here exponentiates a raw log weight: selection works in log space (Gumbel keys are
log_weight + noise), and the diagnostics below normalise by a running log-sum-exp first, which
shifts every log weight by the same constant and so keeps their ranking. Weights are stored as
float64 (float32 would lose the ordering of long documents' nearby weights), and the scorer
refuses to write a non-finite weight.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import pyarrow as pa

from thresher.dsir.features import HashedNgramFeaturizer
from thresher.dsir.fit import FittedDsir
from thresher.scorers.base import ScorerBase

NUM_TOKENS_COLUMN = "dsir_num_tokens"


def weight_column(target: str) -> str:
    """The sidecar column of `target`'s log importance weights (unique across all scorers)."""
    return f"dsir_{target}_log_weight"


def example_length(num_features: np.ndarray | int, ngrams: int) -> np.ndarray | int:
    """The reference's per-example length from a document's feature count: for n >= 1 and at
    least n - 1 tokens it is exactly the number of tokens."""
    return (num_features + ngrams * (ngrams - 1) // 2) // ngrams


def passes_min_length(num_tokens: np.ndarray | int, min_example_length: int) -> np.ndarray | bool:
    """The reference's rule: a document is a candidate only with at least this many tokens."""
    return num_tokens >= min_example_length


@dataclass(frozen=True)
class DsirScorer(ScorerBase):
    """Log importance weights of every document toward each target of one fit.

    Its fields identify the fit (`fit_hash` is the content hash of the fitted counts, so it is
    the scorer's cache identity); the log-ratio matrix itself (8 bytes x buckets x targets) rides
    along as a non-field attribute set by `from_fit`, so the scorer pickles to workers without
    touching the run directory, and moving the run does not change any cache key.
    """

    name: ClassVar[str] = "dsir"
    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = (NUM_TOKENS_COLUMN, weight_column("<target>"))
    column_params: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"targets": f"one {weight_column('<target>')} column per target"})

    fit_hash: str
    targets: tuple[str, ...]
    ngrams: int = 2
    num_buckets: int = 10_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))

    @classmethod
    def from_fit(cls, fitted: FittedDsir) -> DsirScorer:
        scorer = cls(fit_hash=fitted.fit_hash, targets=fitted.targets, ngrams=fitted.ngrams,
                     num_buckets=fitted.num_buckets)
        object.__setattr__(scorer, "_log_ratio", np.ascontiguousarray(fitted.log_ratio))
        return scorer

    @property
    def featurizer(self) -> HashedNgramFeaturizer:
        return HashedNgramFeaturizer(ngrams=self.ngrams, num_buckets=self.num_buckets)

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field("doc_id", pa.string(), nullable=False), pa.field(NUM_TOKENS_COLUMN, pa.int64())]
            + [pa.field(weight_column(t), pa.float64()) for t in self.targets]
        )

    def log_weights(self, texts: list[str | None] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(num_tokens (docs,), log_weights (targets, docs)) of a batch of texts."""
        log_ratio = getattr(self, "_log_ratio", None)
        if log_ratio is None:
            raise RuntimeError("DsirScorer has no fitted parameters: build it with DsirScorer.from_fit(fitted) "
                               "or thresher.dsir.weights.load_scorer(run)")
        batch = self.featurizer.featurize(texts)
        doc_index = batch.doc_index
        n = len(texts)
        weights = np.empty((len(self.targets), n), dtype=np.float64)
        for t in range(len(self.targets)):
            weights[t] = np.bincount(doc_index, weights=log_ratio[t][batch.ids], minlength=n)
        if not np.isfinite(weights).all():
            raise FloatingPointError(f"DSIR fit {self.fit_hash} gave a non-finite log weight")
        return example_length(batch.lengths, self.ngrams), weights

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        num_tokens, weights = self.log_weights(batch.column("text"))
        return pa.RecordBatch.from_arrays(
            [batch.column("doc_id"), pa.array(num_tokens, pa.int64())]
            + [pa.array(w, pa.float64()) for w in weights],
            schema=self.output_schema,
        )


def load_scorer(run, fit_hash: str | None = None) -> DsirScorer:
    """The scorer of a run's fit (the newest when `fit_hash` is None)."""
    from thresher.dsir.fit import load_fit

    return DsirScorer.from_fit(load_fit(run, fit_hash))


# -- numerics -------------------------------------------------------------------------------------


def logsumexp(values: np.ndarray) -> float:
    """log(sum(exp(values))) without overflow; -inf for no values."""
    if values.size == 0:
        return -math.inf
    top = float(np.max(values))
    return top + math.log(float(np.sum(np.exp(values - top))))


def normalized_weights(log_weights: np.ndarray) -> np.ndarray:
    """exp(log_w) / sum(exp(log_w)) computed in log space: finite for any finite log weights,
    in the same order as them (tiny ones may underflow to 0.0, never to a wrong order)."""
    return np.exp(log_weights - logsumexp(log_weights))


@dataclass
class LogWeightStats:
    """Streaming summary of log weights: range, and the importance weights' effective sample size
    ESS = (sum w)^2 / sum w^2, computed as exp(2 LSE(log w) - LSE(2 log w)) so nothing overflows."""

    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    _lse: float = -math.inf
    _lse2: float = -math.inf

    def update(self, log_weights: np.ndarray) -> None:
        if log_weights.size == 0:
            return
        self.count += int(log_weights.size)
        self.minimum = min(self.minimum, float(np.min(log_weights)))
        self.maximum = max(self.maximum, float(np.max(log_weights)))
        self._lse = float(np.logaddexp(self._lse, logsumexp(log_weights)))
        self._lse2 = float(np.logaddexp(self._lse2, logsumexp(2.0 * log_weights)))

    @property
    def effective_sample_size(self) -> float:
        return math.exp(2 * self._lse - self._lse2) if self.count else 0.0

    def summary(self) -> dict:
        if not self.count:
            return {"count": 0}
        return {
            "count": self.count,
            "min_log_weight": round(self.minimum, 4),
            "max_log_weight": round(self.maximum, 4),
            # the range as powers of ten, the form issue #12 reports it in
            "log10_weight_range": [round(self.minimum / math.log(10), 2), round(self.maximum / math.log(10), 2)],
            "effective_sample_size": round(self.effective_sample_size, 3),
        }
