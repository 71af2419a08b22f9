"""Hashed n-gram features, bucket for bucket the same as the reference `data-selection` 1.0.3.

The reference lowercases a text with `str.lower`, splits it with NLTK's `WordPunctTokenizer`
(the pattern `\\w+|[^\\w\\s]+`, which NLTK runs on the third-party `regex` engine), and hashes every
unigram and every space-joined n-gram up to `ngrams` into `num_buckets` buckets with
`int(sha256(ngram).hexdigest(), 16) % num_buckets`. This module produces identical counts; the
parity tests compare them with the reference on real text in many scripts.

Speed (this is the hot path of fitting and weighting). A batch of uni- and bigrams (the default,
and the reference's) is featurised whole, over its Arrow strings:

- Tokenising: `wordpunct.tokenize_batch`, numpy over the UTF-8 bytes with a per-code-point class
  table taken from `regex` itself, so every character is classified as the reference's engine
  does (see that module).
- Hashing: sha256 per n-gram is what makes the reference slow, so every n-gram is hashed once
  per process and memoised. A batch's tokens are deduplicated by Arrow's hash dictionary; each
  distinct token gets its code (token id << 24 | bucket) from a dict, once per batch. Bigrams
  never become strings once seen: they are int64 keys (id_a << 32 | id_b) computed with numpy and
  looked up all at once in a vectorised hash table (`pairtable`); only unseen ones are spelled out
  and hashed. The memo is bounded (`token_cache` token entries, `ngram_cache` bigrams: ~30 MB +
  ~50 MB at the defaults); a full one is replaced by an empty one, which refills with the frequent
  n-grams first (Zipf).
- Counting: a batch of documents becomes one flat int32 array of bucket ids plus each id's
  document; counts and weights are then `np.bincount` calls.

Longer n-grams (`ngrams` >= 3), and Python strings that Arrow cannot hold (lone surrogates), take
the per-document path, `tokenize` and the same memo; both paths give the same features (tested).
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex

from thresher.dsir import pairtable, wordpunct

TOKEN_PATTERN = r"\w+|[^\w\s]+"
TOKENIZER_ID = "wordpunct"  # names the tokeniser in fitted parameters and cache keys
HASH_ID = "sha256-mod"

_REGEX_TOKENS = regex.compile(TOKEN_PATTERN, regex.UNICODE | regex.MULTILINE | regex.DOTALL)
# For ASCII text `regex` agrees with re.ASCII except that U+001C-U+001F are not whitespace to it.
_ASCII_TOKENS = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_\t\n\v\f\r ]+")

DEFAULT_TOKEN_CACHE = 1 << 18  # token entries memoised per process, bare and followed by whitespace (~100 B each)
DEFAULT_NGRAM_CACHE = 1 << 21  # distinct bigrams memoised (24 B each in a half-full hash table)
CHUNK_TOKENS = 1 << 17  # tokens turned into ids at once (the bigram keys and their lookups)
CHUNK_BYTES = 1 << 22  # text tokenised at once by the Arrow path


def tokenize(text: str) -> list[str]:
    """Lowercased word-punct tokens, exactly as `WordPunctTokenizer().tokenize(text.lower())`."""
    lowered = text.lower()
    if lowered.isascii():  # `re` is ~2x faster than `regex`, and agrees with it on ASCII (pattern above)
        return _ASCII_TOKENS.findall(lowered)
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


class _SpacedCodes(dict):
    """token followed by its whitespace (as `wordpunct.tokenize_batch(trailing_space=True)` gives
    it) -> the token's code; a separate memo so that the token ids stay those of bare tokens."""

    __slots__ = ("vocabulary", "spaces")

    def __missing__(self, spaced: str) -> int:
        code = self[spaced] = self.vocabulary.codes[spaced.rstrip(self.spaces)]
        return code


class _Vocabulary:
    """One generation of a process's memo state for one bucket count.

    - `codes`: token -> (token id << 24) | bucket of the token (a dict lookup per token, in C);
      `spaced_codes`: the same for a token with the whitespace after it (the Arrow path's form);
    - `tokens`: token id -> token, to spell out a bigram the first time it is seen;
    - `pair_table`: bigram key (id_a << 32 | id_b) -> bucket, looked up for a whole batch in one
      vectorised probe; new bigrams are hashed (sha256 of "a b", as the reference) and added.

    Thread safety: token ids and new bigrams are added under a lock; lookups take none (see
    `pairtable`). A full vocabulary is replaced by a new generation; callers hold on to the
    generation they started with, so ids never change under them.
    """

    def __init__(self, num_buckets: int, token_capacity: int, pair_capacity: int):
        self.num_buckets = num_buckets
        self.token_capacity = token_capacity
        self.pair_capacity = pair_capacity
        self.codes = _Codes()
        self.codes.vocabulary = self
        self.spaced_codes = _SpacedCodes()
        self.spaced_codes.vocabulary, self.spaced_codes.spaces = self, wordpunct.space_chars()
        self.tokens: list[str] = []
        self.pair_table = pairtable.PairTable()
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
        """Buckets (int32) of bigram keys, in any order and with repeats: one vectorised probe of
        the memo; the keys it lacks are spelled out, hashed once each and added."""
        buckets = self.pair_table.lookup(keys)
        missing = buckets == pairtable.MISSING
        if missing.any():
            asked = keys[missing]
            new_keys = np.unique(asked)
            with self._lock:  # another thread may have added some meanwhile: ask again under the lock
                new_buckets = self.pair_table.lookup(new_keys)
                fresh = new_buckets == pairtable.MISSING
                fresh_keys = new_keys[fresh]
                tokens, b = self.tokens, self.num_buckets
                sha256, from_bytes = hashlib.sha256, int.from_bytes  # inlined: this is the cold path's cost
                hashed = np.fromiter(
                    (from_bytes(sha256(f"{tokens[x]} {tokens[y]}".encode()).digest(), "big") % b
                     for x, y in zip((fresh_keys >> 32).tolist(), (fresh_keys & 0xFFFFFFFF).tolist())),
                    dtype=np.int32, count=len(fresh_keys))
                new_buckets[fresh] = hashed
                self.pair_table.insert(fresh_keys, hashed)
            buckets[missing] = new_buckets[np.searchsorted(new_keys, asked)]
        return buckets

    def ngram_bucket(self, ngram: str) -> int:
        bucket = self.ngrams.get(ngram)
        if bucket is None:
            bucket = self.ngrams[ngram] = _sha256_bucket(ngram, self.num_buckets)
        return bucket

    def full(self) -> bool:
        return (len(self.codes) + len(self.spaced_codes) > self.token_capacity
                or self.pair_table.size > self.pair_capacity or len(self.ngrams) > self.pair_capacity)


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

    def featurize(self, texts: Iterable[str | None] | pa.Array | pa.ChunkedArray) -> FeatureBatch:
        """Bucket ids of every document of a batch (a None or empty text has no features), from
        Arrow strings or Python ones. Uni- and bigrams are computed over the whole batch at once
        (`_featurize_arrow`); longer n-grams, and Python strings that Arrow cannot hold (lone
        surrogates), document by document (`_featurize_python`). Both give the same features."""
        if not isinstance(texts, (pa.Array, pa.ChunkedArray, Sequence)):
            texts = list(texts)  # read once, whichever path takes it
        if self.ngrams <= 2:
            arrow = _as_arrow(texts)
            if arrow is not None:
                return self._featurize_arrow(arrow)
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = texts.to_pylist()
        return self._featurize_python(texts)

    def _featurize_arrow(self, texts: pa.LargeStringArray) -> FeatureBatch:
        """Uni- and bigram bucket ids of a batch, tokenised `CHUNK_BYTES` of text at a time and
        looked up `CHUNK_TOKENS` tokens at a time, which bounds the temporary arrays (~15 bytes a
        byte of text, on top of the result's ~12) whatever the batch size."""
        if not len(texts):
            return FeatureBatch(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.int64))
        vocabulary = _vocabulary(self.num_buckets, self.token_cache, self.ngram_cache)
        offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
        cuts = np.unique(np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], CHUNK_BYTES), side="right") - 1)
        bounds = [int(c) for c in cuts if 0 < c < len(texts)]
        parts = [self._arrow_chunk(vocabulary, texts.slice(start, end - start), start)
                 for start, end in zip([0, *bounds], [*bounds, len(texts)])]
        _retire_if_full(vocabulary)
        if len(parts) == 1:
            return parts[0]
        return FeatureBatch(*(np.concatenate(arrays) for arrays in zip(*parts)))

    def _arrow_chunk(self, vocabulary: _Vocabulary, texts: pa.LargeStringArray, first_doc: int) -> FeatureBatch:
        """Uni- and bigram bucket ids of consecutive documents: every document's unigrams, then
        every document's bigrams. Tokens get their codes once per distinct token of the chunk
        (Arrow's hash dictionary, then the memo); a bigram is the pair of its tokens' ids."""
        tokens, token_counts = wordpunct.tokenize_batch(texts, trailing_space=True)
        encoded = pc.dictionary_encode(tokens)
        del tokens
        indices = encoded.indices.to_numpy()
        distinct = encoded.dictionary.to_pylist()
        distinct_codes = np.fromiter(map(vocabulary.spaced_codes.__getitem__, distinct), dtype=np.int64,
                                     count=len(distinct))
        n_tokens = len(indices)
        pairs_per_doc = np.maximum(token_counts - 1, 0) if self.ngrams >= 2 else np.zeros_like(token_counts)
        n_features = n_tokens + int(pairs_per_doc.sum())
        documents = np.arange(first_doc, first_doc + len(texts), dtype=np.int32)
        ids = np.empty(n_features, dtype=np.int32)
        np.take((distinct_codes & _BUCKET_MASK).astype(np.int32), indices, out=ids[:n_tokens])
        doc_index = np.empty(n_features, dtype=np.int32)
        doc_index[:n_tokens] = np.repeat(documents, token_counts)
        doc_index[n_tokens:] = np.repeat(documents, pairs_per_doc)
        if n_features > n_tokens:
            token_ids = distinct_codes >> _CODE_BITS
            # the pair starting at token i is (i, i + 1) unless i ends its document
            within = np.ones(n_tokens - 1, dtype=bool)
            last_of_doc = np.cumsum(token_counts) - 1
            within[last_of_doc[(last_of_doc >= 0) & (last_of_doc < n_tokens - 1)]] = False
            written = n_tokens
            for start in range(0, n_tokens - 1, CHUNK_TOKENS):
                end = min(start + CHUNK_TOKENS, n_tokens - 1)
                keys = token_ids[indices[start:end]]
                keys <<= 32
                keys |= token_ids[indices[start + 1 : end + 1]]
                keys = keys[within[start:end]]
                ids[written : written + len(keys)] = vocabulary.pair_buckets(keys)
                written += len(keys)
        return FeatureBatch(ids, doc_index, token_counts + pairs_per_doc)

    def _featurize_python(self, texts: Iterable[str | None]) -> FeatureBatch:
        """`featurize` document by document, for any n and any Python string.

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
            ids.append(vocabulary.pair_buckets(keys[within]))
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


def _as_arrow(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.LargeStringArray | None:
    """The texts as one large_string array (nulls as ""), or None for Python strings that are not
    valid Unicode (a lone surrogate has no UTF-8)."""
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        try:
            texts = pa.array(texts, pa.large_string())
        except (pa.ArrowException, UnicodeEncodeError):
            return None
    return wordpunct.as_large_strings(texts)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; elsewhere there is no such call (or no CDLL(None))
    except (OSError, AttributeError, TypeError):
        return None


_trim = _malloc_trim()


def release_memory() -> None:
    """Hand the memory freed by featurising back to the system: glibc's heap and Arrow's pool both
    keep what a batch's temporaries freed (tens of MB) for reuse, which is right within a stage
    and only inflates the process for whatever comes after it. Called when a stage ends."""
    if _trim is not None:
        _trim(0)
    pa.default_memory_pool().release_unused()


def cache_sizes() -> dict[str, int]:
    """Entries held by this process's memo state (for benchmarks and memory checks)."""
    sizes = {}
    for (buckets, _, _), vocabulary in _vocabularies.items():
        sizes[f"tokens/{buckets}"] = sizes.get(f"tokens/{buckets}", 0) + len(vocabulary.tokens)
        sizes[f"spaced/{buckets}"] = sizes.get(f"spaced/{buckets}", 0) + len(vocabulary.spaced_codes)
        sizes[f"bigrams/{buckets}"] = sizes.get(f"bigrams/{buckets}", 0) + vocabulary.pair_table.size
        sizes[f"ngrams/{buckets}"] = sizes.get(f"ngrams/{buckets}", 0) + len(vocabulary.ngrams)
    return sizes


def clear_caches() -> None:
    with _vocabularies_lock:
        _vocabularies.clear()


if sys.maxsize < 1 << 62:  # pragma: no cover - bucket ids are int64 everywhere
    raise ImportError("thresher.dsir needs a 64-bit Python")
