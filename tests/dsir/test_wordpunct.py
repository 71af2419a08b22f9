"""The batch tokeniser and the bigram hash table against their per-document and dict equivalents."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.dsir.mixture import c4_texts
from tests.dsir.test_features import EDGE_CASES
from thresher.dsir import features, wordpunct
from thresher.dsir.features import HashedNgramFeaturizer, tokenize
from thresher.dsir.pairtable import MISSING, PairTable


@pytest.fixture(scope="module")
def texts(sample_data, udhr_texts) -> list[str | None]:
    return udhr_texts + EDGE_CASES + c4_texts(sample_data)[:100] + [None, "ΟΔΟΣ Σ ΣΣ aΣ.", "x\u0130y", "   "]


def _per_document(tokens: list[str], counts: np.ndarray) -> list[list[str]]:
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    return [tokens[a:b] for a, b in zip(bounds, bounds[1:])]


def test_batch_tokens_equal_the_per_document_tokeniser(texts):
    expected = [tokenize(t) if t else [] for t in texts]
    large = pa.array(texts, pa.large_string())
    arrays = {"large": large, "string": pa.array(texts, pa.string()), "slice": large.slice(7, len(texts) - 20),
              "chunked": pa.chunked_array([large.slice(0, 50), large.slice(50)])}
    for name, array in arrays.items():
        want = expected[7 : len(texts) - 13] if name == "slice" else expected
        tokens, counts = wordpunct.tokenize_batch(array)
        assert _per_document(tokens.to_pylist(), counts) == want, name
        spaced, spaced_counts = wordpunct.tokenize_batch(array, trailing_space=True)
        stripped = [t.rstrip(wordpunct.space_chars()) for t in spaced.to_pylist()]
        assert np.array_equal(spaced_counts, counts) and stripped == tokens.to_pylist(), name
    # the comparison covered texts that Python lowercases (U+0130, final sigma, ...) and many scripts
    table = wordpunct.tables()
    assert sum(any(table.python_lower[ord(c)] for c in t) for t in texts if t) >= 5
    assert sum(not t.isascii() for t in texts if t) >= 300


def test_class_table_is_the_reference_engines():
    table = wordpunct.tables()
    assert table.char_class[ord("a")] == table.char_class[ord("_")] == table.char_class[0x0939] == wordpunct.WORD
    assert table.char_class[0x1C] == wordpunct.OTHER  # whitespace to `re` and str.split, not to `regex`
    assert table.char_class[0xA0] == table.char_class[0x3000] == table.char_class[ord("\n")] == wordpunct.SPACE
    assert table.python_lower[0x130] and table.python_lower[0x3A3] and not table.python_lower[ord("A")]


@pytest.mark.parametrize("ngrams", [1, 2])
def test_arrow_path_equals_the_per_document_path(texts, monkeypatch, ngrams):
    """Same ids in the same order per document (so weights are bitwise the same), also when a
    batch is cut into several tokenising chunks and several lookup slices."""
    featurizer = HashedNgramFeaturizer(ngrams=ngrams, num_buckets=5000)
    expected = featurizer._featurize_python(texts)
    monkeypatch.setattr(features, "CHUNK_BYTES", 50_000)
    monkeypatch.setattr(features, "CHUNK_TOKENS", 3_000)
    batch = featurizer.featurize(pa.array(texts, pa.large_string()))
    assert np.array_equal(batch.lengths, expected.lengths)
    assert np.array_equal(batch.in_document_order(), expected.in_document_order())
    ratio = np.random.default_rng(0).normal(size=5000)
    assert np.array_equal(np.bincount(batch.doc_index, weights=ratio[batch.ids], minlength=len(texts)),
                          np.bincount(expected.doc_index, weights=ratio[expected.ids], minlength=len(texts)))


def test_python_strings_arrow_cannot_hold_take_the_per_document_path():
    featurizer = HashedNgramFeaturizer()
    assert featurizer.featurize(iter(["one two", None])).lengths.tolist() == [3, 0]  # a generator, read once
    with pytest.raises(UnicodeEncodeError):  # as the reference: sha256 needs UTF-8
        featurizer.featurize(["lone \ud800 surrogate"])


def test_pair_table_is_a_dict():
    rng = np.random.default_rng(1)
    table, reference = PairTable(), {}
    for round_ in range(6):
        # clustered keys (neighbouring token ids) and a few huge ones, as bigram keys are
        keys = np.unique(np.concatenate([rng.integers(0, 5_000 * (round_ + 1), 4_000),
                                         rng.integers(0, 1 << 62, 100)]).astype(np.int64))
        new = np.array([k for k in keys.tolist() if k not in reference], dtype=np.int64)
        values = rng.integers(0, 1 << 24, len(new)).astype(np.int32)
        table.insert(new, values)
        reference.update(zip(new.tolist(), values.tolist()))
        probe = np.concatenate([keys, keys[::3], rng.integers(0, 1 << 40, 500)]).astype(np.int64)
        assert table.lookup(probe).tolist() == [reference.get(k, MISSING) for k in probe.tolist()]
    assert table.size == len(reference) and table.nbytes >= 12 * 2 * len(reference)  # load <= 1/2
