"""The featurizer against the reference (data-selection 1.0.3, NLTK's WordPunctTokenizer)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tests.dsir.mixture import c4_texts
from thresher.dsir import features
from thresher.dsir.features import HashedNgramFeaturizer, stable_bucket, tokenize

EDGE_CASES = [
    "", "   \n\t", "a", "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks.",
    "\x1c\x1dab\x1e cd\x1f e",  # ASCII separators: whitespace to `re`, not to `regex`/NLTK
    "tab\tnew\nline\rret\x0bvt\x0cff\x85nel\u00a0nbsp\u2003emsp\u3000ideo",
    "x² ½ ३४ क्षत्रिय ñandú", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 emoji\u200dzwj", "İSTANBUL ΣΊΣΥΦΟΣ ǅungla", "a_b __ -- ...!?",
]


def test_stable_bucket_is_the_reference_hash():
    import hashlib

    for gram in ["the", "of the", "ñandú", "😀 x", ""]:
        expected = int(hashlib.sha256(gram.encode("utf-8")).hexdigest(), 16) % 10_000
        assert stable_bucket(gram, 10_000) == expected


def test_tokens_equal_nltk_wordpunct_in_every_udhr_language(udhr_texts):
    nltk_tokenize = pytest.importorskip("nltk.tokenize").WordPunctTokenizer().tokenize
    texts = udhr_texts + EDGE_CASES
    mismatched = [t[:40] for t in texts if tokenize(t) != nltk_tokenize(t.lower())]
    assert not mismatched, f"{len(mismatched)} of {len(texts)} texts tokenise differently, e.g. {mismatched[:3]}"
    # The test means something only if both tokeniser paths ran: the ASCII `re` one and `regex`.
    lowered = [t.lower() for t in texts]
    assert sum(t.isascii() for t in lowered) >= 3
    assert sum(not t.isascii() for t in lowered) >= 300


@pytest.mark.parametrize("ngrams,buckets", [(1, 10_000), (2, 10_000), (2, 97), (3, 10_000)])
def test_counts_equal_the_reference(sample_data, udhr_texts, ngrams, buckets):
    reference = pytest.importorskip("data_selection.hashed_ngram_dsir")
    texts = c4_texts(sample_data)[:60] + udhr_texts[::8] + EDGE_CASES
    ours = HashedNgramFeaturizer(ngrams=ngrams, num_buckets=buckets).batch_counts(texts)
    theirs = np.stack([reference.get_ngram_counts(t, n=ngrams, num_buckets=buckets) for t in texts])
    assert ours.shape == theirs.shape
    differing = np.nonzero((ours != theirs).any(axis=1))[0]
    assert len(differing) == 0, f"{len(differing)} of {len(texts)} texts differ, e.g. {texts[differing[0]][:60]!r}"
    assert ours.sum() > 100_000  # real work was compared


def test_bounded_caches_give_the_same_features(sample_data):
    texts = c4_texts(sample_data)[:80]
    expected = HashedNgramFeaturizer().batch_counts(texts)
    tiny = HashedNgramFeaturizer(token_cache=64, ngram_cache=128)
    generations = set()
    for start in range(0, 80, 10):  # every batch overflows the tiny memo, which starts afresh
        batch = texts[start : start + 10]
        assert np.array_equal(tiny.batch_counts(batch), expected[start : start + 10])
        generations.add(id(features._vocabulary(tiny.num_buckets, 64, 128)))
    assert len(generations) > 1
    assert any(k.startswith("tokens/") for k in features.cache_sizes())


def test_featurize_is_thread_safe(sample_data):
    from concurrent.futures import ThreadPoolExecutor

    texts = c4_texts(sample_data)[:120]
    expected = HashedNgramFeaturizer(num_buckets=3000).batch_counts(texts)
    features.clear_caches()
    featurizer = HashedNgramFeaturizer(num_buckets=3000, token_cache=2000, ngram_cache=20_000)
    chunks = [texts[i : i + 5] for i in range(0, 120, 5)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(featurizer.batch_counts, chunks * 3))
    assert np.array_equal(np.concatenate(results[: len(chunks)]), expected)
    assert all(np.array_equal(a, b) for a, b in zip(results, results[len(chunks):]))


def test_featurize_layout_and_ngram_strings_align():
    featurizer = HashedNgramFeaturizer(ngrams=3, num_buckets=1000)
    texts = ["One two, three.", None, "", "solo"]
    batch = featurizer.featurize(texts)
    # 5 tokens -> 5 + 4 + 3 features; None and "" -> none; one token -> 1.
    assert batch.lengths.tolist() == [12, 0, 0, 1]
    assert sorted(batch.doc_index.tolist()) == [0] * 12 + [3]
    grams = featurizer.ngram_strings(texts[0])
    assert grams[:6] == ["one", "two", ",", "three", ".", "one two"] and grams[-1] == ", three ."
    assert [stable_bucket(g, 1000) for g in grams] == batch.in_document_order()[:12].tolist()
    assert batch.first_documents(1).tolist() == featurizer.featurize(texts[:1]).ids.tolist()


def test_featurizer_is_a_small_picklable_value():
    featurizer = HashedNgramFeaturizer(ngrams=2, num_buckets=500)
    featurizer.featurize(["warm the caches up"])
    blob = pickle.dumps(featurizer)
    assert len(blob) < 300 and pickle.loads(blob) == featurizer
    with pytest.raises(ValueError):
        HashedNgramFeaturizer(ngrams=0)
