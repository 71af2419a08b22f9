"""Hashed n-gram features, bucket for bucket the same as the reference `data-selection` 1.0.3.

The reference lowercases a text with `str.lower`, splits it with NLTK's `WordPunctTokenizer`
(the pattern `\\w+|[^\\w\\s]+`, which NLTK runs on the third-party `regex` engine), and hashes every
unigram and every space-joined n-gram up to `ngrams` into `num_buckets` buckets with
`int(sha256(ngram).hexdigest(), 16) % num_buckets`. This module produces identical counts; the
parity tests compare them with the reference on real text in many scripts.

Speed (this is the hot path of fitting and weighting):

- Tokenising: the pattern only classifies characters (word, space, other) and takes maximal runs,
  so two engines that classify every character of a text alike give identical tokens. `re` is
  ~2x faster than `regex`, but the two disagree on some characters (combining marks, some digits,
  U+001C-U+001F, ...). Those characters are computed once per process by asking both engines about
  every character of the Basic Multilingual Plane; a text containing none of them (and nothing
  beyond the BMP) is tokenised with `re`, any other text with `regex`.
- Hashing: sha256 per n-gram is what makes the reference slow, so every n-gram is hashed once
  per process and memoised. Tokens map to a code (token id << 24 | bucket) in a dict, one C-level
  lookup per token. Bigrams never become strings once seen: a batch's bigrams are int64 keys
  (id_a << 32 | id_b) computed with numpy, deduplicated with `np.unique` and looked up in a sorted
  array with `np.searchsorted`; only unseen ones are spelled out and hashed. The memo is bounded
  (`token_cache` tokens, `ngram_cache` bigrams: ~30 MB + ~32 MB at the defaults); a full one is
  replaced by an empty one, which refills with the frequent n-grams first (Zipf).
- Counting: a batch of documents becomes one flat int64 array of bucket ids plus each id's
  document; counts and weights are then single `np.bincount` calls.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import regex

TOKEN_PATTERN = r"\w+|[^\w\s]+"
TOKENIZER_ID = "wordpunct"  # names the tokeniser in fitted parameters and cache keys
HASH_ID = "sha256-mod"

_REGEX_TOKENS = regex.compile(TOKEN_PATTERN, regex.UNICODE | regex.MULTILINE | regex.DOTALL)
_RE_TOKENS = re.compile(TOKEN_PATTERN, re.UNICODE | re.MULTILINE | re.DOTALL)
# For ASCII text `regex` agrees with re.ASCII except that U+001C-U+001F are not whitespace to it.
_ASCII_TOKENS = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_\t\n\v\f\r ]+")

DEFAULT_TOKEN_CACHE = 1 << 18  # distinct tokens memoised per process (~100 B each)
DEFAULT_NGRAM_CACHE = 1 << 21  # distinct bigrams memoised (16 B each in sorted arrays)
CHUNK_TOKENS = 1 << 17


def _classes(engine, flags) -> tuple:
    word = engine.compile(r"\w", flags)
    space = engine.compile(r"\s", flags)
    return word.match, space.match


_disagreement: re.Pattern | None = None
_disagreement_lock = threading.Lock()


def _engine_disagreement() -> re.Pattern:
    """A pattern that finds any character on which `re` and `regex` may tokenise differently:
    a BMP character they classify differently, or any character beyond the BMP (not checked)."""
    global _disagreement
    with _disagreement_lock:
        if _disagreement is None:
            re_word, re_space = _classes(re, re.UNICODE)
            rx_word, rx_space = _classes(regex, regex.UNICODE)
            differing = []
            for code in range(0x10000):
                char = chr(code)
                if 0xD800 <= code <= 0xDFFF:
                    differing.append(code)  # lone surrogates: leave them to the reference engine
                    continue
                if (re_word(char) is None) != (rx_word(char) is None) or (
                    (re_space(char) is None) != (rx_space(char) is None)
                ):
                    differing.append(code)
            ranges, start, prev = [], None, None
            for code in differing:
                if start is None:
                    start = prev = code
                elif code == prev + 1:
                    prev = code
                else:
                    ranges.append((start, prev))
                    start = prev = code
            if start is not None:
                ranges.append((start, prev))
            body = "".join(
                f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges
            )
            _disagreement = re.compile(f"[{body}\\U00010000-\\U0010ffff]")
        return _disagreement


def tokenize(text: str) -> list[str]:
    """Lowercased word-punct tokens, exactly as `WordPunctTokenizer().tokenize(text.lower())`."""
    lowered = text.lower()
    if lowered.isascii():
        return _ASCII_TOKENS.findall(lowered)
    if _engine_disagreement().search(lowered) is None:
        return _RE_TOKENS.findall(lowered)
    return _REGEX_TOKENS.findall(lowered)


def stable_bucket(ngram: str, num_buckets: int) -> int:
    """The reference's bucket: int(sha256(utf-8).hexdigest(), 16) % num_buckets."""
    return int.from_bytes(hashlib.sha256(ngram.encode("utf-8")).digest(), "big") % num_buckets


_CODE_BITS = 24  # a token's code is (token id << 24) | bucket
_BUCKET_MASK = (1 << _CODE_BITS) - 1
MAX_BUCKETS = 1 << _CODE_BITS


def _sha256_bucket(ngram: str, num_buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(ngram.encode("utf-8")).digest(), "big") % num_buckets


class _Codes(dict):
    """token -> code, assigned on first sight under the vocabulary's lock."""

    __slots__ = ("vocabulary",)

    def __missing__(self, token: str) -> int:
        return self.vocabulary.add(token)


class _Vocabulary:
    """One generation of a process's memo state for one bucket count.

    - `codes`: token -> (token id << 24) | bucket of the token (a dict lookup per token, in C);
    - `tokens`: token id -> token, to spell out a bigram the first time it is seen;
    - `pairs`: sorted int64 bigram keys (id_a << 32 | id_b) and their buckets, looked up for a
      whole batch with one `np.unique` + `np.searchsorted`; new bigrams are hashed (sha256 of
      "a b", as the reference) and merged in.

    Thread safety: token ids are assigned under a lock; `pairs` is one tuple replaced at once,
    so a reader always sees matching arrays (two concurrent inserts may drop one another's new
    pairs, which are then simply hashed again). A full vocabulary is replaced by a new generation;
    callers hold on to the generation they started with, so ids never change under them.
    """

    def __init__(self, num_buckets: int, token_capacity: int, pair_capacity: int):
        self.num_buckets = num_buckets
        self.token_capacity = token_capacity
        self.pair_capacity = pair_capacity
        self.codes = _Codes()
        self.codes.vocabulary = self
        self.tokens: list[str] = []
        self.pairs = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        self.ngrams: dict[str, int] = {}  # 3-grams and longer (string memo), rarely used
        self._lock = threading.Lock()

    def add(self, token: str) -> int:
        with self._lock:
            code = dict.get(self.codes, token)
            if code is None:
                code = (len(self.tokens) << _CODE_BITS) | _sha256_bucket(token, self.num_buckets)
                self.tokens.append(token)
                dict.__setitem__(self.codes, token, code)
        return code

    def pair_buckets(self, keys: np.ndarray) -> np.ndarray:
        """Buckets of sorted unique bigram keys."""
        table_keys, table_buckets = self.pairs
        out = np.empty(len(keys), dtype=np.int64)
        if len(table_keys):
            position = np.minimum(np.searchsorted(table_keys, keys), len(table_keys) - 1)
            found = table_keys[position] == keys
            out[found] = table_buckets[position[found]]
            missing = ~found
        else:
            missing = np.ones(len(keys), dtype=bool)
        if missing.any():
            new_keys = keys[missing]
            tokens, b = self.tokens, self.num_buckets
            firsts = (new_keys >> 32).tolist()
            seconds = (new_keys & 0xFFFFFFFF).tolist()
            sha256, from_bytes = hashlib.sha256, int.from_bytes  # inlined: this is the cold path's cost
            new_buckets = np.fromiter(
                (from_bytes(sha256(f"{tokens[x]} {tokens[y]}".encode()).digest(), "big") % b
                 for x, y in zip(firsts, seconds)),
                dtype=np.int64, count=len(firsts))
            out[missing] = new_buckets
            at = np.searchsorted(table_keys, new_keys)
            self.pairs = (np.insert(table_keys, at, new_keys), np.insert(table_buckets, at, new_buckets))
        return out

    def ngram_bucket(self, ngram: str) -> int:
        bucket = self.ngrams.get(ngram)
        if bucket is None:
            bucket = self.ngrams[ngram] = _sha256_bucket(ngram, self.num_buckets)
        return bucket

    def full(self) -> bool:
        return (len(self.tokens) > self.token_capacity or len(self.pairs[0]) > self.pair_capacity
                or len(self.ngrams) > self.pair_capacity)


_vocabularies: dict[tuple[int, int, int], _Vocabulary] = {}
_vocabularies_lock = threading.Lock()


def _vocabulary(num_buckets: int, token_capacity: int, pair_capacity: int) -> _Vocabulary:
    key = (num_buckets, token_capacity, pair_capacity)
    vocabulary = _vocabularies.get(key)
    if vocabulary is None:
        with _vocabularies_lock:
            vocabulary = _vocabularies.setdefault(key, _Vocabulary(num_buckets, token_capacity, pair_capacity))
    return vocabulary


def _retire_if_full(vocabulary: _Vocabulary) -> None:
    if vocabulary.full():
        key = (vocabulary.num_buckets, vocabulary.token_capacity, vocabulary.pair_capacity)
        with _vocabularies_lock:
            if _vocabularies.get(key) is vocabulary:
                _vocabularies[key] = _Vocabulary(*key)


class FeatureBatch(NamedTuple):
    """The features of a batch of documents: bucket `ids`, the document each belongs to
    (`doc_index`, not necessarily in order), and how many each document has (`lengths`)."""

    ids: np.ndarray  # int32 (buckets < 2**24)
    doc_index: np.ndarray  # int32, same length as ids
    lengths: np.ndarray  # int64, one per document

    def counts(self, num_buckets: int) -> np.ndarray:
        """Summed bucket counts of the whole batch."""
        return np.bincount(self.ids, minlength=num_buckets).astype(np.int64, copy=False)

    def in_document_order(self) -> np.ndarray:
        """`ids` with every document's features together, documents in order, and within a
        document unigrams first, then bigrams, ... (the order of `ngram_strings`)."""
        return self.ids[np.argsort(self.doc_index, kind="stable")]

    def first_documents(self, n: int) -> np.ndarray:
        """The ids of the first `n` documents."""
        return self.ids[self.doc_index < n]


@dataclass(frozen=True)
class HashedNgramFeaturizer:
    """Hashed n-gram counts of lowercased word-punct tokens (unigrams up to `ngrams`-grams).

    A frozen value: its fields are its parameters; the memo state lives per process, keyed by
    bucket count, so the featurizer pickles to workers for nothing and threads share it.
    """

    ngrams: int = 2
    num_buckets: int = 10_000
    token_cache: int = DEFAULT_TOKEN_CACHE
    ngram_cache: int = DEFAULT_NGRAM_CACHE

    def __post_init__(self) -> None:
        if not 1 <= self.ngrams <= 8:
            raise ValueError(f"ngrams must be between 1 and 8, got {self.ngrams}")
        if not 1 <= self.num_buckets <= MAX_BUCKETS:
            raise ValueError(f"num_buckets must be between 1 and 2**{_CODE_BITS}, got {self.num_buckets}")
        if self.token_cache >= 1 << 31:
            raise ValueError("token_cache must be below 2**31")

    @property
    def params(self) -> dict:
        """What determines the features (the cache sizes do not)."""
        return {"tokenizer": TOKENIZER_ID, "hash": HASH_ID, "ngrams": self.ngrams, "num_buckets": self.num_buckets}

    def ngram_strings(self, text: str) -> list[str]:
        """Every feature of `text` as the string that is hashed (unigrams first, then bigrams, ...)."""
        tokens = tokenize(text)
        out = list(tokens)
        for n in range(2, self.ngrams + 1):
            out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        return out

    def featurize(self, texts: Iterable[str | None]) -> FeatureBatch:
        """Bucket ids of every document of a batch (a None or empty text has no features).

        Tokens are turned into ids in chunks of about `CHUNK_TOKENS`, which bounds the temporary
        arrays whatever the batch size."""
        vocabulary = _vocabulary(self.num_buckets, self.token_cache, self.ngram_cache)
        code_of = vocabulary.codes.__getitem__
        ids: list[np.ndarray] = []
        doc_index: list[np.ndarray] = []
        extra_ids: list[np.ndarray] = []  # 3-grams and longer, after all uni- and bigrams
        extra_docs: list[np.ndarray] = []
        lengths = array("q")
        codes = array("q")  # int64 straight into a buffer numpy wraps without a copy
        n_tokens = array("q")
        first_doc = 0
        doc = -1
        for doc, text in enumerate(texts):
            tokens = tokenize(text) if text else ()
            codes.extend(map(code_of, tokens))
            n_tokens.append(len(tokens))
            for n in range(3, self.ngrams + 1):
                if len(tokens) >= n:
                    grams = zip(*(tokens[i : len(tokens) - n + 1 + i] for i in range(n)))
                    extra = np.fromiter(map(vocabulary.ngram_bucket, map(" ".join, grams)), dtype=np.int64)
                    extra_ids.append(extra.astype(np.int32))
                    extra_docs.append(np.full(len(extra), doc, dtype=np.int32))
            if len(codes) >= CHUNK_TOKENS:
                self._chunk(vocabulary, codes, n_tokens, first_doc, ids, doc_index, lengths)
                codes, n_tokens, first_doc = array("q"), array("q"), doc + 1
        self._chunk(vocabulary, codes, n_tokens, first_doc, ids, doc_index, lengths)
        _retire_if_full(vocabulary)
        lengths_array = np.frombuffer(lengths, dtype=np.int64)
        ids += extra_ids
        doc_index += extra_docs
        all_ids = np.concatenate(ids) if ids else np.empty(0, dtype=np.int32)
        all_docs = np.concatenate(doc_index) if doc_index else np.empty(0, dtype=np.int32)
        if self.ngrams >= 3:  # trigrams and longer were added per document: count everything
            lengths_array = np.bincount(all_docs, minlength=doc + 1).astype(np.int64)
        return FeatureBatch(all_ids, all_docs, lengths_array)

    def _chunk(self, vocabulary: _Vocabulary, codes: array, n_tokens: array, first_doc: int,
               ids: list, doc_index: list, lengths: array) -> None:
        """Unigram and bigram bucket ids of consecutive documents whose token codes are given."""
        if not len(n_tokens):
            return
        code_array = np.frombuffer(codes, dtype=np.int64)
        token_counts = np.frombuffer(n_tokens, dtype=np.int64)
        documents = np.arange(first_doc, first_doc + len(token_counts), dtype=np.int32)
        ids.append((code_array & _BUCKET_MASK).astype(np.int32))
        doc_index.append(np.repeat(documents, token_counts))
        pairs_per_doc = np.zeros(len(token_counts), dtype=np.int64)
        if self.ngrams >= 2 and len(code_array) > 1:
            token_ids = code_array >> _CODE_BITS
            keys = (token_ids[:-1] << 32) | token_ids[1:]
            last_of_doc = np.cumsum(token_counts) - 1  # a pair starting there crosses into the next document
            within = np.ones(len(keys), dtype=bool)
            within[last_of_doc[(last_of_doc >= 0) & (last_of_doc < len(keys))]] = False
            unique_keys, inverse = np.unique(keys[within], return_inverse=True)
            ids.append(vocabulary.pair_buckets(unique_keys).astype(np.int32)[inverse])
            pairs_per_doc = np.maximum(token_counts - 1, 0)
            doc_index.append(np.repeat(documents, pairs_per_doc))
        lengths.extend((token_counts + pairs_per_doc).tolist())

    def counts(self, text: str) -> np.ndarray:
        """The count vector of one text (the reference's `get_ngram_counts`)."""
        return self.featurize([text]).counts(self.num_buckets)

    def batch_counts(self, texts: Sequence[str | None]) -> np.ndarray:
        """One count vector per text, shape (len(texts), num_buckets); for tests and small data."""
        batch = self.featurize(texts)
        flat = batch.doc_index.astype(np.int64) * self.num_buckets + batch.ids
        return np.bincount(flat, minlength=len(texts) * self.num_buckets).reshape(len(texts), self.num_buckets)


def cache_sizes() -> dict[str, int]:
    """Entries held by this process's memo state (for benchmarks and memory checks)."""
    sizes = {}
    for (buckets, _, _), vocabulary in _vocabularies.items():
        sizes[f"tokens/{buckets}"] = sizes.get(f"tokens/{buckets}", 0) + len(vocabulary.tokens)
        sizes[f"bigrams/{buckets}"] = sizes.get(f"bigrams/{buckets}", 0) + len(vocabulary.pairs[0])
        sizes[f"ngrams/{buckets}"] = sizes.get(f"ngrams/{buckets}", 0) + len(vocabulary.ngrams)
    return sizes


def clear_caches() -> None:
    with _vocabularies_lock:
        _vocabularies.clear()


if sys.maxsize < 1 << 62:  # pragma: no cover - bucket ids are int64 everywhere
    raise ImportError("thresher.dsir needs a 64-bit Python")
