"""The DSIR scorer (the Scorer contract) and the log-space numerics."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pyarrow as pa
import pytest

from tests.dsir.mixture import c4_texts
from thresher.dsir.features import HashedNgramFeaturizer
from thresher.dsir.fit import FittedDsir
from thresher.dsir.weights import (
    NUM_TOKENS_COLUMN,
    DsirScorer,
    LogWeightStats,
    example_length,
    logsumexp,
    normalized_weights,
    passes_min_length,
    weight_column,
)
from thresher.scorers.base import check_output, scorer_params_hash


def _fitted(texts_raw: list[str], targets: dict[str, list[str]], buckets: int = 2000) -> FittedDsir:
    featurizer = HashedNgramFeaturizer(num_buckets=buckets)
    return FittedDsir(
        ngrams=2, num_buckets=buckets, targets=tuple(targets),
        raw_counts=featurizer.featurize(texts_raw).counts(buckets),
        target_counts=np.stack([featurizer.featurize(t).counts(buckets) for t in targets.values()]),
    )


@pytest.fixture(scope="module")
def fitted(sample_data) -> FittedDsir:
    texts = c4_texts(sample_data)
    return _fitted(texts, {"recipes": [t for t in texts if "recipe" in t.lower()], "news": texts[:20]})


def _batch(texts: list[str | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"doc_id": [f"d{i}" for i in range(len(texts))],
                                       "text": pa.array(texts, pa.large_string())})


def test_scorer_contract_columns_and_values(fitted, sample_data):
    scorer = DsirScorer.from_fit(fitted)
    texts = c4_texts(sample_data)[:50] + ["", None, "one"]
    batch = _batch(texts)
    result = check_output(scorer, batch, scorer.score(batch))
    assert result.schema.names == ["doc_id", NUM_TOKENS_COLUMN, "dsir_recipes_log_weight", "dsir_news_log_weight"]
    assert weight_column("recipes") == "dsir_recipes_log_weight"
    counts = fitted.featurizer.batch_counts(texts)
    for t, name in enumerate(fitted.targets):
        expected = counts @ fitted.log_ratio[t]  # the reference's np.dot(log_diff, counts)
        assert np.allclose(result.column(weight_column(name)).to_numpy(), expected, rtol=1e-10, atol=1e-9)
    lengths = result.column(NUM_TOKENS_COLUMN).to_pylist()
    assert lengths[-3:] == [0, 0, 1]
    from thresher.dsir.features import tokenize

    assert lengths[:50] == [len(tokenize(t)) for t in texts[:50]]


def test_scorer_identity_is_the_fit_content_and_it_pickles(fitted):
    scorer = DsirScorer.from_fit(fitted)
    clone = pickle.loads(pickle.dumps(scorer))
    batch = _batch(["a recipe with butter and sugar", "the president said"])
    assert clone.score(batch).equals(scorer.score(batch))
    assert scorer_params_hash(scorer) == scorer_params_hash(clone)
    other = _fitted(["something else entirely"] * 3, {"recipes": ["butter"], "news": ["president"]})
    assert scorer_params_hash(DsirScorer.from_fit(other)) != scorer_params_hash(scorer)
    with pytest.raises(RuntimeError, match="from_fit"):
        DsirScorer(fit_hash=fitted.fit_hash, targets=fitted.targets).score(batch)


def test_min_length_rule_is_the_references():
    # (features + n(n-1)/2) // n: the token count once a text has at least n - 1 tokens.
    for tokens in range(0, 12):
        for n in (1, 2, 3):
            features = sum(max(tokens - i, 0) for i in range(n))
            expected = tokens if tokens >= n - 1 else (features + n * (n - 1) // 2) // n
            assert example_length(features, n) == expected
    assert passes_min_length(np.array([99, 100, 101]), 100).tolist() == [False, True, True]


def test_log_space_numerics_survive_the_dynamic_range_of_real_weights():
    # Issue #12 reports weights from 5e-52 to 6e40; long documents go far beyond float64's exp range.
    log_w = np.array([-5000.0, -120.0, 0.0, 93.1, 700.0, 710.0, 4000.0])
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(log_w)).all()  # the naive way overflows
    weights = normalized_weights(log_w)
    assert np.isfinite(weights).all() and math.isclose(weights.sum(), 1.0)
    assert (np.diff(weights) >= 0).all()  # the ranking survives (ties only where exp underflows)
    assert math.isclose(logsumexp(np.array([1000.0, 1000.0])), 1000 + math.log(2))

    stats = LogWeightStats()
    for chunk in np.array_split(log_w, 3):
        stats.update(chunk)
    assert math.isclose(stats.effective_sample_size, 1.0, rel_tol=1e-9)  # one weight dominates
    even = LogWeightStats()
    even.update(np.full(50, 3000.0))
    assert math.isclose(even.effective_sample_size, 50.0)
    summary = stats.summary()
    assert summary["max_log_weight"] == 4000.0 and summary["log10_weight_range"][1] == round(4000 / math.log(10), 2)


def test_non_finite_weights_are_refused():
    fitted = FittedDsir(ngrams=1, num_buckets=4, targets=("t",), raw_counts=np.array([0, 1, 1, 1]),
                        target_counts=np.array([[1, 1, 1, 1]]), epsilon=0.0)
    with np.errstate(divide="ignore"):
        scorer = DsirScorer.from_fit(fitted)
        texts = [f"w{i}" for i in range(40)]
        bad = [t for t in texts if fitted.featurizer.featurize([t]).ids[0] == 0]
        assert bad
        with pytest.raises(FloatingPointError, match="non-finite"):
            scorer.score(_batch(bad[:1]))
