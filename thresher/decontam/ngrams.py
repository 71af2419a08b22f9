"""Normalised word n-grams as stable uint64 hashes, for a whole batch of texts at once.

Normalisation (version `NORMALIZATION_VERSION`) follows lm-evaluation-harness's decontamination
janitor: lowercase, delete punctuation, split on whitespace. Two deliberate widenings: lowercase
is Unicode `str.lower` (the janitor lowercases ASCII only), and every character that is neither a
word character nor whitespace is deleted, plus `_` (the janitor deletes `string.punctuation`
only), so that curly quotes, dashes and the like do not hide a copied question. As in the
janitor, deleting punctuation joins what it separated ("don't" -> "dont", "e.g." -> "eg").

Hashing (version `HASH_VERSION`): each distinct word gets blake2b-64 of its UTF-8 bytes; an
n-gram is the polynomial `sum(word[j + i] * P**(n - 1 - i))` mod 2**64 over its words, computed
with numpy for every window of the batch. For words that differ the difference of two such sums is
a uniform 64-bit value, so two distinct n-grams collide with probability ~2**-64, and the hash is
the same in every process and on every run (never Python's salted `hash()`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NORMALIZATION_VERSION = "1"
HASH_VERSION = "1"

_NOT_WORD = re.compile(r"[^\w\s]|_")
# An odd multiplier (a 64-bit prime), so that multiplying by its powers is a bijection mod 2**64.
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15 | 1)
# Word hashes are memoised per process; the memo is dropped when it reaches this size, which
# bounds memory over a corpus whose vocabulary keeps growing (~100 bytes an entry).
_WORD_CACHE_LIMIT = 1 << 20
_word_cache: dict[str, int] = {}


def normalized_words(text: str) -> list[str]:
    """The words of `text` after normalisation (see the module doc)."""
    return _NOT_WORD.sub("", text.lower()).split()


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def word_hashes(words: list[str]) -> np.ndarray:
    """uint64 hash of each word (memoised)."""
    cache = _word_cache
    if len(cache) > _WORD_CACHE_LIMIT:
        cache.clear()
    values = list(map(cache.get, words))
    if None in values:
        for index, value in enumerate(values):
            if value is None:
                word = words[index]
                values[index] = cache[word] = _word_hash(word)
    return np.array(values, dtype=np.uint64)


@dataclass(frozen=True)
class BatchNgrams:
    """The n-grams of a batch of texts.

    hashes: uint64 hash of each n-gram, in text order then position order.
    text_of: for each n-gram, the index of its text in the batch.
    start: for each n-gram, the batch-wide index of its first word.
    word_counts: words per text after normalisation.
    text_of_word: for each word of the batch, the index of its text.
    """

    n: int
    hashes: np.ndarray
    text_of: np.ndarray
    start: np.ndarray
    word_counts: np.ndarray
    text_of_word: np.ndarray

    @property
    def total_words(self) -> int:
        return int(self.text_of_word.size)


def batch_ngrams(texts: Sequence[str | None], n: int) -> BatchNgrams:
    """Every word n-gram of every text (texts with fewer than `n` words have none; None is empty).
    N-grams never span two texts."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    words: list[str] = []
    counts = np.zeros(len(texts), dtype=np.int64)
    for index, text in enumerate(texts):
        if text:
            tokens = normalized_words(text)
            counts[index] = len(tokens)
            words += tokens
    total = len(words)
    text_of_word = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
    windows = total - n + 1
    if windows <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return BatchNgrams(n, np.zeros(0, dtype=np.uint64), empty, empty, counts, text_of_word)
    hashed = word_hashes(words)
    rolling = hashed[:windows].copy()
    for offset in range(1, n):  # Horner: ((w0 * P + w1) * P + w2) ... wraps mod 2**64
        rolling *= _MULTIPLIER
        rolling += hashed[offset: offset + windows]
    starts = np.arange(windows, dtype=np.int64)
    # A window is an n-gram of one text when its last word belongs to the same text as its first.
    inside = text_of_word[:windows] == text_of_word[n - 1:]
    return BatchNgrams(n, rolling[inside], text_of_word[:windows][inside], starts[inside], counts, text_of_word)


def text_ngram_hashes(text: str, n: int) -> np.ndarray:
    """The n-gram hashes of one text (for tests and small callers)."""
    return batch_ngrams([text], n).hashes
