"""Training: reference (DCLM) and judge (distillation) labels, held-out agreement, determinism, the
model files (fastText binary + JSON, no pickle) and the report."""

from __future__ import annotations

import json
import pickletools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from tests.classifier.conftest import STOP_WORD_SHARE
from thresher.classifier.config import ClassifierConfig
from thresher.classifier.scorer import MODEL_FORMAT, ClassifierError, ClassifierScorer, resolve_model
from thresher.classifier.train import classification_metrics, roc_auc, train


def test_metrics_match_their_definitions():
    positive = np.array([True, True, True, False, False, False])
    probability = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1])
    # pairs (pos, neg) ranked right: 0.9 beats all 3, 0.6 beats 2, 0.4 beats 2 -> 7 of 9
    assert roc_auc(positive, probability) == pytest.approx(7 / 9)
    assert roc_auc(positive, np.full(6, 0.5)) == pytest.approx(0.5)  # ties count half
    m = classification_metrics(positive, probability, target=np.array([5.0, 4, 3, 2, 1, 0]))
    pos, neg = m["classes"]["positive"], m["classes"]["negative"]
    # predicted positive (p >= 0.5): 0.9, 0.6, 0.7 -> tp 2 of 3 predicted, 2 of 3 true
    assert (pos["precision"], pos["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert (neg["precision"], neg["recall"], neg["rows"]) == pytest.approx((2 / 3, 2 / 3, 3))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["spearman"] == pytest.approx(spearmanr([5, 4, 3, 2, 1, 0], probability).statistic)


def test_reference_mode_learns_alpaca_from_c4_on_held_out_rows(classifier_run, alpaca_reference):
    """DCLM's recipe on real data: Alpaca records (reference positives) vs C4 pages (the pool)."""
    config = ClassifierConfig(name="alpaca", source="reference", reference=[alpaca_reference],
                              where="source = 'c4_sample.jsonl'", sample=400, holdout_fraction=0.3, seed=1)
    result = train(classifier_run, config)
    heldout = result["metrics"]["heldout"]
    print(f"\nalpaca vs C4: {result['rows']['train']} training rows; held out {heldout['rows']}: "
          f"AUC {heldout['roc_auc']:.3f}, positive F1 {heldout['classes']['positive']['f1']:.3f}, "
          f"macro F1 {heldout['macro_f1']:.3f}")
    assert result["rows"]["reference_rows"] == 5000 and result["rows"]["pool_rows"] == 200
    assert result["rows"]["positive_train"] + result["rows"]["negative_train"] == result["rows"]["train"]
    # measured (seed 1): AUC 0.866, positive F1 0.774, macro F1 0.761 on 130 held-out rows; chance is 0.5
    assert heldout["roc_auc"] >= 0.78 and heldout["macro_f1"] >= 0.68


def test_judge_mode_distils_a_score_column(classifier_run):
    config = ClassifierConfig(name="stopwords", target=STOP_WORD_SHARE, sample=3000, seed=1)
    result = train(classifier_run, config)
    heldout = result["metrics"]["heldout"]
    print(f"\nstop-word share: {result['rows']['train']} training rows, threshold {result['positive_threshold']:.3f}; "
          f"held out {heldout['rows']}: F1 {heldout['classes']['positive']['f1']:.3f}, AUC {heldout['roc_auc']:.3f}, "
          f"Spearman {heldout['spearman']:.3f}")
    assert result["rows"]["judged_rows"] == result["rows"]["labelled"] == 2661
    assert abs(result["positive_share"] - 0.5) < 0.05  # the median threshold balances the labels
    # measured (seed 1): F1 0.922, AUC 0.975, Spearman 0.919 on 562 held-out rows
    assert heldout["classes"]["positive"]["f1"] >= 0.8 and heldout["spearman"] >= 0.75

    report = pq.read_table(classifier_run.root / "classifier" / "reports" / "stopwords.parquet").to_pylist()
    assert {(r["split"], r["class"]) for r in report} == {(s, c) for s in ("train", "heldout")
                                                          for c in ("positive", "negative", "all")}
    predictions = pq.read_table(classifier_run.root / "classifier" / "predictions" / "stopwords.parquet")
    assert predictions.num_rows == 2661 and predictions.column("target").null_count == 0
    assert "Spearman" in (classifier_run.root / "classifier" / "reports" / "stopwords.md").read_text()


def test_same_seed_same_model_and_predictions_other_seed_differs(classifier_run):
    def trained(name, seed):
        return train(classifier_run, ClassifierConfig(name=name, target=STOP_WORD_SHARE, sample=600, seed=seed))

    first, again, other = trained("det", 5), trained("det", 5), trained("det", 6)
    assert first["model_hash"] == again["model_hash"] != other["model_hash"]
    batch = pa.record_batch([pa.array(["a", "b"]), pa.array(["The cat sat on the mat .", "Buy now ! ! cheap"],
                                                              pa.large_string())], names=["doc_id", "text"])
    a = ClassifierScorer(model=first["model_dir"]).score(batch)
    b = ClassifierScorer(model=again["model_dir"]).score(batch)
    assert a.equals(b)
    # latest.json names the newest model
    assert resolve_model(classifier_run.root / "models" / "classifier_det").name == other["model_hash"]


def test_model_files_are_fasttext_and_json_not_pickle(classifier_run):
    result = train(classifier_run, ClassifierConfig(name="files", target=STOP_WORD_SHARE, sample=400, seed=2))
    directory = resolve_model(result["model_dir"])
    meta = json.loads((directory / "model.json").read_text())
    assert meta["format"] == MODEL_FORMAT and meta["rows"]["train"] == result["rows"]["train"]
    assert meta["seed"] == 2 and meta["floret_version"] and meta["text"] == {"lowercase": True, "max_chars": 10_000}
    raw = (directory / "model.bin").read_bytes()
    assert raw[:4] == (793712314).to_bytes(4, "little")  # fastText's magic number
    with pytest.raises(Exception):  # noqa: B017 - any failure: it is not a pickle stream
        list(pickletools.genops(raw))
    scorer = ClassifierScorer(model=str(directory.parent))  # the classifier_<name>/ dir: its newest model
    assert scorer.score_column == "classifier_files_score" and scorer.model_hash == meta["model_hash"]


def test_errors_name_the_problem(classifier_run):
    with pytest.raises(ClassifierError, match="no row"):
        train(classifier_run, ClassifierConfig(name="none", target=STOP_WORD_SHARE, where="false", seed=1))
    with pytest.raises(ClassifierError, match="same label"):
        train(classifier_run, ClassifierConfig(name="flat", target="1", positive_threshold=0, sample=100, seed=1))
    with pytest.raises(ValueError, match="needs `target`"):
        ClassifierConfig(name="x")
    with pytest.raises(ValueError, match="reference"):
        ClassifierConfig(name="x", source="reference")
