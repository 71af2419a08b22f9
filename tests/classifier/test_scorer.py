"""The scorer: registered, batch prediction equal to one row at a time, text normalisation, nulls,
a cheap pickle that carries no model, and run-wide percentiles usable in selection SQL."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.classifier.conftest import STOP_WORD_SHARE
from thresher.classifier.config import ClassifierConfig
from thresher.classifier.percentile import percentile_of, write_percentiles
from thresher.classifier.scorer import ClassifierScorer
from thresher.classifier.text import prediction_lines
from thresher.scorers.apply import score_shard
from thresher.scorers.base import check_output, scorer_key
from thresher.scorers.registry import build_scorer
from thresher.storage.catalog import build_catalog, open_catalog


@pytest.fixture(scope="module")
def model_dir(classifier_run) -> str:
    from thresher.classifier.train import train

    return train(classifier_run, ClassifierConfig(name="pct", target=STOP_WORD_SHARE, sample=1500, seed=7))["model_dir"]


def test_text_is_lowercased_one_line_and_cut():
    texts = pa.array(["A  B\nC\n\nd", None, "ÉÉÉÉ"], pa.large_string())
    assert prediction_lines(texts, lowercase=True, max_chars=5) == ["a  b \n", "\n", "éééé\n"]
    assert prediction_lines(texts, lowercase=False, max_chars=100)[0] == "A  B C  d\n"


def test_registered_scorer_scores_a_batch_as_row_by_row(model_dir, sample_data):
    scorer = build_scorer("classifier@1", {"model": model_dir})
    assert isinstance(scorer, ClassifierScorer) and scorer_key(scorer) == "classifier_pct@1"
    texts = [line for line in (sample_data / "wikitext2_valid.txt").read_text(encoding="utf-8").splitlines()
             if line.strip()][:40]
    batch = pa.record_batch([pa.array([f"d{i}" for i in range(len(texts))]), pa.array(texts, pa.large_string())],
                            names=["doc_id", "text"])
    scored = check_output(scorer, batch, scorer.score(batch)).column(1).to_numpy()
    one_by_one = np.concatenate([scorer.score(batch.slice(i, 1)).column(1).to_numpy() for i in range(len(texts))])
    np.testing.assert_array_equal(scored, one_by_one)
    assert ((scored >= 0) & (scored <= 1)).all() and scored.std() > 0.05


def test_null_text_gets_a_null_score_and_pickle_carries_no_model(model_dir):
    scorer = ClassifierScorer(model=model_dir)
    batch = pa.record_batch([pa.array(["a", "b"]), pa.array(["some words here", None], pa.large_string())],
                            names=["doc_id", "text"])
    result = scorer.score(batch)  # loads the model into this process
    assert result.column(1).null_count == 1 and result.column(1)[0].is_valid
    payload = pickle.dumps(scorer)
    assert len(payload) < 2_000 and pickle.loads(payload) == scorer


def test_percentile_definition():
    ranked = np.sort(np.array([0.1, 0.2, 0.2, 0.3, 0.9], dtype=np.float32))
    np.testing.assert_allclose(percentile_of(ranked, np.array([0.1, 0.2, 0.3, 0.9], dtype=np.float32)),
                               [0.0, 20.0, 60.0, 80.0])


def test_percentile_sidecar_selects_the_top_tenth(classifier_run, model_dir):
    scorer = ClassifierScorer(model=model_dir)
    for table, shard, _ in classifier_run.data_parts():
        score_shard(classifier_run, scorer, table, shard)
    stats = write_percentiles(classifier_run, scorer, "documents")
    build_catalog(classifier_run)
    assert stats["rows"] == 2661
    with open_catalog(classifier_run) as con:
        total, top, low_of_top, high_of_rest = con.sql(
            "SELECT count(*), count(*) FILTER (WHERE classifier_pct_pct >= 90), "
            "min(classifier_pct_score) FILTER (WHERE classifier_pct_pct >= 90), "
            "max(classifier_pct_score) FILTER (WHERE classifier_pct_pct < 90) FROM documents_scored").fetchall()[0]
    assert total == 2661 and abs(top - 266) <= 15  # ties may move a few rows across the cut
    assert low_of_top >= high_of_rest  # the percentile orders rows as the score does
    part = next((classifier_run.root / "scores" / "classifier_pct_pct@1").glob("part-*.parquet"))
    assert pq.read_schema(part).names == ["doc_id", "classifier_pct_pct"]
