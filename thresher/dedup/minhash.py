"""MinHash signatures of word n-gram sets, vectorised over a batch of documents.

The pipeline for a batch (no Python loop over documents or shingles):

    tokens (normalize.tokenize_batch)
      -> 64-bit token hashes            hashing.span_hashes: polynomial prefix sums + fmix64
      -> 64-bit n-gram (shingle) hashes  fmix64(sum_j token[i + j] * K_j), K_j fixed odd constants
      -> 32-bit shingle values           high 32 bits of the shingle hash
      -> signature                       min over shingles of a_k * fmix32(x) + b_k  (mod 2^32)

The last step is datasketch's "affine32" permutation scheme with the same seeded draw of (a, b),
so a thresher signature equals `datasketch.MinHash(num_perm, seed, scheme="affine32")` fed with
the same 32-bit shingle values (tested), and it estimates Jaccard like datasketch with its own
hashing (tested statistically). A document with fewer than `ngram` tokens has one shingle, the
hash of all its tokens; a document with no tokens has no shingles and the all-ones signature
(datasketch's empty value), and never becomes an LSH candidate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.hashing import U32, U64, fixed_constants, fmix32, fmix64, span_hashes
from thresher.dedup.normalize import TokenizedBatch, tokenize_batch

# Bump when token hashing, shingle hashing or the permutation scheme change.
HASH_SCHEME = "thresher-minhash/1"
EMPTY = np.uint32(0xFFFFFFFF)
# Shingles per block of the (num_perm x chunk) permutation matrix (~7 MB at 112 permutations). The
# per-block numpy call overhead, not cache size, decides: on C4 (~400 shingles a document) 16384 ran
# 1.5x faster than 4096 and 4x faster than 1024; 65536 is slower again (the block leaves L3).
_CHUNK = 16384


@functools.lru_cache(maxsize=16)
def _ngram_constants(ngram: int) -> np.ndarray:
    return fixed_constants("thresher-ngram", ngram)


@functools.lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of the affine permutations x -> a*x + b mod 2^32 (a odd, hence bijective).

    Drawn exactly as datasketch 2.x draws its "affine32" permutations for the same seed, so
    signatures are interchangeable with datasketch's."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=U32) * U32(2) + U32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=U32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


@dataclass(frozen=True)
class Shingles:
    """The shingle hashes of a batch: document d owns values[offsets[d]:offsets[d + 1]]."""

    token_hashes: np.ndarray      # uint64, one per token
    doc_token_offsets: np.ndarray
    values: np.ndarray            # uint64, one per shingle (duplicates within a document kept)
    offsets: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def values32(self) -> np.ndarray:
        """The 32-bit shingle values MinHash permutes (what datasketch's hashfunc would return)."""
        return (self.values >> U64(32)).astype(U32)

    def doc_set(self, doc: int) -> np.ndarray:
        """The sorted distinct 64-bit shingles of one document (for exact Jaccard)."""
        return np.unique(self.values[self.offsets[doc] : self.offsets[doc + 1]])


def ngram_hashes(token_hashes: np.ndarray, doc_token_offsets: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of every document, and per-document offsets into them."""
    k = _ngram_constants(ngram)
    lengths = np.diff(doc_token_offsets)
    counts = np.where(lengths >= ngram, lengths - ngram + 1, np.minimum(lengths, 1))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n_tokens = len(token_hashes)
    long_values = np.empty(0, dtype=U64)
    windows = n_tokens - ngram + 1
    if windows > 0:
        acc = token_hashes[:windows] * k[0]
        term = np.empty_like(acc)
        for j in range(1, ngram):
            np.multiply(token_hashes[j : windows + j], k[j], out=term)
            acc += term
        # Window i (tokens i..i+ngram-1) is a shingle iff it ends inside the document of token i:
        # the valid windows are exactly the long documents' shingles, in order. Tokens outside every
        # document (offsets need not start at 0) get end 0 and open no window.
        doc_end = np.zeros(n_tokens, dtype=np.int64)
        doc_end[doc_token_offsets[0] : doc_token_offsets[-1]] = np.repeat(doc_token_offsets[1:], lengths)
        long_values = acc[np.arange(ngram, windows + ngram) <= doc_end[:windows]]

    short_docs = np.flatnonzero((lengths > 0) & (lengths < ngram))
    if not short_docs.size:
        return fmix64(long_values), offsets
    out = np.empty(offsets[-1], dtype=U64)
    out[np.repeat(lengths >= ngram, counts)] = long_values
    first = doc_token_offsets[short_docs]
    acc = np.zeros(short_docs.size, dtype=U64)
    for j in range(ngram - 1):
        present = lengths[short_docs] > j
        acc[present] += token_hashes[first[present] + j] * k[j]
    out[offsets[short_docs]] = acc
    return fmix64(out), offsets


def shingle_batch(texts, ngram: int) -> Shingles:
    """Tokenise and shingle a batch of texts (Arrow string array or list of str)."""
    tokens = tokenize_batch(texts)
    return shingles_of(tokens, ngram)


def shingles_of(tokens: TokenizedBatch, ngram: int) -> Shingles:
    token_hashes = span_hashes(tokens.codes, tokens.token_starts, tokens.token_ends)
    values, offsets = ngram_hashes(token_hashes, tokens.doc_token_offsets, ngram)
    return Shingles(token_hashes, tokens.doc_token_offsets, values, offsets)


def signatures_from_values32(values32: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(num_docs, num_perm) uint32 MinHash signatures of the 32-bit shingle values per document."""
    a, b = permutations(num_perm, seed)
    n_docs = len(offsets) - 1
    sig = np.full((n_docs, num_perm), EMPTY, dtype=U32)
    total = int(offsets[-1])
    if total == 0:
        return sig
    x = fmix32(values32.astype(U32, copy=False))
    a_col, b_col = a[:, None], b[:, None]
    block = np.empty((num_perm, min(_CHUNK, total)), dtype=U32)
    starts = offsets[:-1]
    nonempty = np.flatnonzero(offsets[1:] > starts)
    nonempty_starts = starts[nonempty]
    for s0 in range(0, total, _CHUNK):
        s1 = min(total, s0 + _CHUNK)
        view = block[:, : s1 - s0]
        # Transposed (perm x shingle) layout: each document's min runs over contiguous memory.
        np.multiply(a_col, x[None, s0:s1], out=view)
        np.add(view, b_col, out=view)
        lo = np.searchsorted(nonempty_starts, s0, side="right") - 1
        hi = np.searchsorted(nonempty_starts, s1, side="left")
        docs = nonempty[max(lo, 0) : hi]
        segments = np.maximum(starts[docs], s0) - s0
        mins = np.minimum.reduceat(view, segments, axis=1)
        sig[docs] = np.minimum(sig[docs], mins.T)
    return sig


def text_slices(texts: pa.Array, max_bytes: int = 4 << 20) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most `max_bytes` of text each (at least one row): the
    vectorised hashing holds ~25 bytes of temporaries per byte of text, so a batch of long
    documents is hashed in slices."""
    lengths = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    slices, start, size = [], 0, 0
    for row, length in enumerate(lengths.tolist()):
        if row > start and size + length > max_bytes:
            slices.append((start, row))
            start, size = row, 0
        size += length
    if start < len(lengths):
        slices.append((start, len(lengths)))
    return slices


@dataclass(frozen=True)
class MinHasher:
    """Seeded MinHash over word n-grams of normalised text."""

    ngram: int = 5
    num_perm: int = 112
    seed: int = 1

    def shingles(self, texts) -> Shingles:
        return shingle_batch(texts, self.ngram)

    def signatures(self, shingles: Shingles) -> np.ndarray:
        return signatures_from_values32(shingles.values32, shingles.offsets, self.num_perm, self.seed)

    def __call__(self, texts) -> np.ndarray:
        return self.signatures(self.shingles(texts))


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """The MinHash estimate of Jaccard similarity: the fraction of equal signature positions."""
    return np.mean(sig_a == sig_b, axis=-1)
