"""Vectorised MinHash: interchangeable with datasketch, and estimates Jaccard as datasketch does."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash

from tests.dedup.planted import c4_texts, edit_words, jaccard, shingle_set
from thresher.dedup.minhash import EMPTY, MinHasher, estimate_jaccard, permutations, shingle_batch


def test_permutations_are_datasketchs_affine32_draw():
    for num_perm, seed in ((112, 1), (128, 42), (7, 0)):
        a, b = permutations(num_perm, seed)
        reference = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        assert np.array_equal(a, reference[0]) and np.array_equal(b, reference[1])


def test_signatures_equal_datasketch_fed_the_same_shingle_values(sample_data):
    texts = c4_texts(sample_data)[:40]
    hasher = MinHasher(ngram=5, num_perm=112, seed=7)
    shingles = hasher.shingles(texts)
    signatures = hasher.signatures(shingles)
    values = shingles.values32
    for d in range(len(texts)):
        reference = MinHash(num_perm=112, seed=7, scheme="affine32", hashfunc=int)
        reference.update_batch(values[shingles.offsets[d] : shingles.offsets[d + 1]].tolist())
        assert np.array_equal(signatures[d], reference.hashvalues), d


def _pairs(sample_data, n_pairs: int = 300):
    """(text_a, text_b, true Jaccard) for real C4 documents and word-edited copies, J spread over (0, 1]."""
    rng = random.Random(3)
    texts = [t for t in c4_texts(sample_data) if len(t.split()) > 60]
    vocabulary = sorted({w for t in texts for w in t.split()})
    pairs = []
    for k in range(n_pairs):
        base = texts[k % len(texts)]
        other = edit_words(base, rng.choice([0.01, 0.03, 0.06, 0.1, 0.2, 0.4]), rng, vocabulary)
        pairs.append((base, other, jaccard(shingle_set(base), shingle_set(other))))
    return pairs


def _datasketch_estimate(a: str, b: str, num_perm: int, seed: int) -> float:
    sketches = []
    for text in (a, b):
        m = MinHash(num_perm=num_perm, seed=seed)  # datasketch's own hashing: sha1 of each shingle
        m.update_batch([" ".join(s).encode() for s in shingle_set(text)])
        sketches.append(m)
    return sketches[0].jaccard(sketches[1])


def test_jaccard_estimates_are_as_good_as_datasketchs(sample_data):
    """Statistical, not equality: over 300 real pairs, thresher's estimation error has no bias and
    the variance MinHash theory predicts, J(1-J)/k, as datasketch's own does (and its seeds)."""
    num_perm = 112
    pairs = _pairs(sample_data)
    truth = np.array([j for _, _, j in pairs])
    assert truth.min() < 0.3 and truth.max() > 0.9 and len(pairs) == 300

    hasher = MinHasher(ngram=5, num_perm=num_perm, seed=11)
    sig_a = hasher([a for a, _, _ in pairs])
    sig_b = hasher([b for _, b, _ in pairs])
    ours = estimate_jaccard(sig_a, sig_b)
    theirs = np.array([_datasketch_estimate(a, b, num_perm, seed=11) for a, b, _ in pairs])

    expected_var = truth * (1 - truth) / num_perm
    for name, estimate in (("thresher", ours), ("datasketch", theirs)):
        error = estimate - truth
        z_bias = error.mean() / np.sqrt(expected_var.sum() / len(pairs) ** 2)
        variance_ratio = np.mean(error**2) / expected_var.mean()
        print(f"{name}: mean error {error.mean():+.4f} (z={z_bias:+.2f}), MSE {np.mean(error ** 2):.5f}, "
              f"MSE / theory {variance_ratio:.2f}")
        assert abs(z_bias) < 4, f"{name} is biased"
        assert 0.7 < variance_ratio < 1.4, f"{name} error variance is off"
    mse_ratio = np.mean((ours - truth) ** 2) / np.mean((theirs - truth) ** 2)
    print(f"MSE thresher / datasketch = {mse_ratio:.2f}")
    assert 0.7 < mse_ratio < 1.4


def test_signatures_are_seeded_and_independent_of_batching(sample_data):
    texts = c4_texts(sample_data)[:50]
    one = MinHasher(seed=1)
    whole = one(texts)
    assert np.array_equal(whole, MinHasher(seed=1)(texts))
    assert not np.array_equal(whole, MinHasher(seed=2)(texts))
    # a document's signature does not depend on its neighbours in the batch, nor on their order
    singles = np.vstack([one([t]) for t in texts])
    assert np.array_equal(whole, singles)
    order = np.random.default_rng(0).permutation(len(texts))
    assert np.array_equal(one([texts[i] for i in order]), whole[order])


def test_long_documents_span_permutation_blocks():
    rng = random.Random(0)
    words = [f"w{rng.randrange(5000)}" for _ in range(30_000)]  # ~30k shingles: several 4096-blocks
    texts = ["short doc here", " ".join(words), "another short one with six words", " ".join(words[::-1])]
    hasher = MinHasher()
    batch = hasher(texts)
    for d, text in enumerate(texts):
        assert np.array_equal(batch[d], hasher([text])[0])
    shingles = hasher.shingles([texts[1]])
    x = shingles.values32
    expected = MinHash(num_perm=112, seed=1, scheme="affine32", hashfunc=int)
    expected.update_batch(x.tolist())
    assert np.array_equal(batch[1], expected.hashvalues)


def test_short_and_empty_documents():
    shingles = shingle_batch(["", "one", "one two", "one two three four", "one two three four five", "!!!"], 5)
    assert shingles.counts.tolist() == [0, 1, 1, 1, 1, 0]
    assert len(set(shingles.values.tolist())) == 4  # the four short documents differ
    signatures = MinHasher()(["", "one two", "..."])
    assert (signatures[0] == EMPTY).all() and (signatures[2] == EMPTY).all() and (signatures[1] != EMPTY).any()


@pytest.mark.parametrize("ngram", [1, 3, 5, 9])
def test_shingles_are_the_reference_ngram_sets(sample_data, ngram):
    texts = c4_texts(sample_data)[:30]
    shingles = shingle_batch(texts, ngram)
    for d, text in enumerate(texts):
        reference = shingle_set(text, ngram)
        assert len(shingles.doc_set(d)) == len(reference)  # distinct n-grams <-> distinct hashes


def test_span_hashes_are_the_documented_polynomial():
    from thresher.dedup.hashing import POLY_MULTIPLIER, U64, fmix64, span_hashes

    rng = np.random.default_rng(0)
    codes = rng.integers(1, 255, 200_000).astype(np.uint8)  # spans beyond one 65,536-power block
    starts = np.sort(rng.choice(199_000, 300, replace=False))
    ends = starts + rng.integers(1, 900, 300)
    hashes = span_hashes(codes, starts, ends)
    for i in range(0, 300, 7):
        s, e = int(starts[i]), int(ends[i])
        value = sum(int(codes[s + k]) * pow(POLY_MULTIPLIER, k, 1 << 64) for k in range(e - s)) % (1 << 64)
        value ^= (e - s) * POLY_MULTIPLIER % (1 << 64)
        assert int(fmix64(np.array([value], dtype=U64))[0]) == int(hashes[i])


def test_hashes_are_stable_across_releases():
    """Golden values: prior runs' indexes are matched against new signatures, so any change here must
    come with a new HASH_SCHEME / NORMALIZER_VERSION (which makes old indexes incompatible, loudly)."""
    from thresher.dedup.exact import exact_hashes
    from thresher.dedup.lsh import band_keys

    text = ["The quick brown fox jumps over the lazy dog, 42 times!"]
    signature = MinHasher()(text)
    assert signature[0][:6].tolist() == [559217147, 212410033, 12019113, 549172605, 467996452, 451390402]
    assert band_keys(signature, 14, 8)[0][:3].tolist() == [-866280584953862926, -5796337802907746595,
                                                          1636966242658709182]
    assert exact_hashes(shingle_batch(text, 5)) == ["38b588b73d8fc7d8f754573946c7180f"]
