"""Dedup quality on real C4 text with planted near-duplicates, against exact Jaccard.

Truth: a document is a near-duplicate member when some other document has exact word-5-gram
Jaccard >= the threshold with it. Prediction: the document is in a MinHash cluster of size > 1.
The variants are C4 documents with random word edits at known rates (0 to 20 % of words, see
tests/dedup/planted.py), so the truth has pairs on both sides of the threshold, not only easy ones.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.dedup.planted import build, precision_recall
from tests.dedup.runs import by_url, ingest, read_dir, write_shards
from thresher.dedup import DedupConfig, dedup_run


@pytest.fixture(scope="module")
def planted(sample_data):
    return build(sample_data)


@pytest.fixture(scope="module")
def planted_run(planted, tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    return ingest(base / "run", write_shards(base / "inputs", planted.texts, shards=4))


def _evaluate(planted, run, config: DedupConfig) -> tuple[float, float, float, dict]:
    dedup_run(run.root, config)
    rows = by_url(run)
    predicted = {i for i, r in rows.items() if r["minhash_cluster_size"] > 1}
    truth = planted.true_members(config.threshold)
    by_rate: dict = defaultdict(lambda: [0, 0])
    for i, kind in enumerate(planted.kinds):
        if kind.startswith("variant"):
            by_rate[kind][0] += i in predicted
            by_rate[kind][1] += 1
    return (*precision_recall(predicted, truth), {k: f"{a}/{n}" for k, (a, n) in sorted(by_rate.items())})


def test_precision_and_recall_at_the_default_setting(planted, planted_run):
    config = DedupConfig()
    precision, recall, f1, by_rate = _evaluate(planted, planted_run, config)
    print(f"\ndefault (14x8, threshold {config.threshold}, no verification): precision {precision:.3f} "
          f"recall {recall:.3f} F1 {f1:.3f}; variants detected by edit rate: {by_rate}")
    assert precision >= 0.9 and recall >= 0.9


def test_verification_removes_the_false_positives(planted, planted_run):
    config = DedupConfig(verify=True)
    precision, recall, f1, _ = _evaluate(planted, planted_run, config)
    print(f"\nverify=True (threshold {config.threshold}): precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}")
    assert precision >= 0.99 and recall >= 0.9
    edges = read_dir(planted_run.root / "dedup" / "edges")
    jaccard, kept = edges.column("jaccard").to_numpy(), edges.column("kept").to_numpy(zero_copy_only=False)
    assert (~kept).sum() > 0 and (jaccard[kept] >= config.threshold).all() and (jaccard[~kept] < config.threshold).all()
    for threshold in (0.8, 0.9):
        strict = DedupConfig(verify=True, threshold=threshold)
        precision, recall, f1, _ = _evaluate(planted, planted_run, strict)
        print(f"verify=True, threshold {threshold}: precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}")
        assert precision >= 0.99 and recall >= 0.9
