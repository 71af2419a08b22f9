"""Repetition measures for a whole batch at once: duplicate lines and paragraphs, Gopher's n-grams.

The same definitions as `text_stats.duplicates` and `text_stats.ngram_repetition`, computed over
every document of a batch in one pass of array operations instead of a Python loop per document.
The words of all documents sit end to end in one flat array with a document index per word; an
n-gram never crosses a document's end.

Exact, not hashed: strings (words, lines, paragraphs) get integer ids from Arrow's hash table
(`dictionary_encode`, which numbers distinct values in the order they first occur), and the keys
built from those ids, (document, id) or (id of an (n-1)-gram, id of a word), are packed into one
int64 and grouped by sorting (`group`).

The n-gram levels prune as the per-document version does: an n-gram can repeat only where both of
its (n-1)-grams repeat. The key of the n-gram at i is (id of the (n-1)-gram at i, id of word
i+n-1); level 1's key is (document, word), so every id stays unique to its document.

Measured on the benchmark corpus (5,000 C4 pages in batches of 1,024, one shared core): the whole
n-gram pass took 260 ms with keys grouped by numpy's sort, 314 ms with Arrow's `dictionary_encode`
(in cache-sized pieces; 2-10 times slower in one piece); polars' `is_first_distinct` and
`len().over` were no faster than Arrow on these keys, and polars has no n-gram primitive.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa


class Groups(NamedTuple):
    """Equal keys of an array, grouped: `ids[i]` numbers the group of element i (0..n_groups-1, in the
    order of the keys' values), `first[g]` is the first element of group g and `counts[g]` its size."""

    ids: np.ndarray
    first: np.ndarray
    counts: np.ndarray

    def is_first(self) -> np.ndarray:
        flags = np.zeros(len(self.ids), bool)
        flags[self.first] = True
        return flags


def group(keys: np.ndarray, key_bits: int) -> Groups:
    """Group equal non-negative int64 `keys` (below 2**key_bits) by sorting them.

    Each key is packed with its position into one int64 so that numpy's plain (SIMD) sort orders by
    key, then position; where key and position bits do not fit in 63, a stable argsort does the same
    more slowly. Group ids follow the keys' order, which `_top_fraction` relies on."""
    n = len(keys)
    if n == 0:
        return Groups(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    pos_bits = max(1, (n - 1).bit_length())
    if key_bits + pos_bits <= 63:
        packed = (keys << np.int64(pos_bits)) | np.arange(n, dtype=np.int64)
        packed.sort()
        sorted_keys = packed >> np.int64(pos_bits)
        sorted_pos = packed & np.int64((1 << pos_bits) - 1)
    else:
        sorted_pos = np.argsort(keys, kind="stable")
        sorted_keys = keys[sorted_pos]
    starts = np.empty(n, bool)
    starts[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    ids = np.empty(n, np.int64)
    ids[sorted_pos] = np.cumsum(starts) - 1
    start_index = np.flatnonzero(starts)
    counts = np.diff(np.append(start_index, n))
    return Groups(ids, sorted_pos[start_index], counts)


def _bits(values: np.ndarray) -> int:
    return int(values.max()).bit_length() if len(values) else 1


def encode(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(id of each string, whether it is the string's first occurrence); ids count up from 0 in
    order of first occurrence (Arrow's hash table numbers values as it first meets them)."""
    if len(values) == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = values.dictionary_encode()
    ids = encoded.indices.to_numpy().astype(np.int64)
    running = np.maximum.accumulate(ids)
    is_first = np.empty(len(ids), bool)
    is_first[0] = True
    np.not_equal(running[1:], running[:-1], out=is_first[1:])
    # The callers rely on that order, so check it: if the ids where the running maximum grows are
    # 0, 1, 2, ... every id first occurs where the maximum reaches it.
    if not np.array_equal(ids[is_first], np.arange(len(encoded.dictionary))):
        raise AssertionError("dictionary_encode did not number values in order of first occurrence")
    return ids, is_first


def duplicates(values: pa.Array, doc: np.ndarray, lengths: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: (items that repeat an earlier item of the same document, their total length)."""
    ids, _ = encode(values)
    bits = _bits(ids)
    repeat = ~group((doc.astype(np.int64) << np.int64(bits)) | ids, _bits(doc) + bits).is_first()
    n_dup = np.bincount(doc[repeat], minlength=n_docs)
    dup_chars = np.bincount(doc[repeat], weights=lengths[repeat], minlength=n_docs)
    return n_dup, dup_chars.astype(np.int64)


def _covered_chars(starts: np.ndarray, n: int, prefix: np.ndarray, doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Per document: characters of the words covered by the n-grams at the sorted global `starts`,
    each word once (an occurrence overlapping the previous one adds only its new words)."""
    if len(starts) == 0:
        return np.zeros(n_docs)
    start_doc = doc[starts]
    lo = starts.copy()
    prev_end = starts[:-1] + n
    same = start_doc[1:] == start_doc[:-1]
    lo[1:] = np.where(same & (prev_end > starts[1:]), prev_end, starts[1:])
    return np.bincount(start_doc, weights=prefix[starts + n] - prefix[lo], minlength=n_docs)


def ngram_repetition(
    word_ids: np.ndarray,
    doc: np.ndarray,
    lengths: np.ndarray,
    n_docs: int,
    top_ns: tuple[int, ...],
    dup_ns: tuple[int, ...],
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """`text_stats.ngram_repetition` for every document: {n: fraction per document} for top and dup.

    `word_ids` identify equal words (any ids, equal words equal ids), `doc` is each word's document
    (non-decreasing), `lengths` each word's characters."""
    top = {n: np.zeros(n_docs) for n in top_ns}
    dup = {n: np.zeros(n_docs) for n in dup_ns}
    n_words = len(word_ids)
    if n_words < 2:
        return top, dup
    doc = doc.astype(np.int64)
    prefix = np.zeros(n_words + 1, np.int64)
    np.cumsum(lengths, out=prefix[1:])
    bounds = np.searchsorted(doc, np.arange(n_docs + 1))
    total = (prefix[bounds[1:]] - prefix[bounds[:-1]]).astype(np.float64)
    safe_total = np.where(total > 0, total, 1.0)
    word_ids = word_ids.astype(np.int64)

    # Level 1: an id per (document, word). Each level keeps only its repeated n-grams: their
    # positions (sorted) and ids, ids that are unique to their document.
    word_bits = _bits(word_ids)
    groups = group((doc << np.int64(word_bits)) | word_ids, _bits(doc) + word_bits)
    repeated = groups.counts[groups.ids] > 1
    rep_pos = np.flatnonzero(repeated)
    rep_id = groups.ids[rep_pos]
    max_n = max((*top_ns, *dup_ns))
    for n in range(2, max_n + 1):
        pair = (rep_pos[1:] == rep_pos[:-1] + 1) & (doc[rep_pos[1:]] == doc[rep_pos[:-1]])
        cand = rep_pos[:-1][pair]
        if len(cand) == 0:
            break
        prev = rep_id[:-1][pair]
        groups = group((prev << np.int64(word_bits)) | word_ids[cand + n - 1], _bits(prev) + word_bits)
        if n in top:
            top[n] = _top_fraction(cand, groups, n, prefix, doc, n_docs) / safe_total
        if n in dup:
            dup[n] = _covered_chars(cand[~groups.is_first()], n, prefix, doc, n_docs) / safe_total
        repeated = groups.counts[groups.ids] > 1
        rep_pos = cand[repeated]
        rep_id = groups.ids[repeated]
    return top, dup


def _top_fraction(
    cand: np.ndarray, groups: Groups, n: int, prefix: np.ndarray, doc: np.ndarray, n_docs: int
) -> np.ndarray:
    """Per document: characters covered by every occurrence of its most frequent n-gram (ties: the
    most characters, then the earliest first occurrence); 0 where no n-gram occurs twice.

    Group ids follow the keys' order, whose leading part is the document at every level (level 1
    keys start with it, later keys with an earlier level's id), so the groups of a document are
    contiguous and each tie-break is a segmented reduction."""
    multi = np.flatnonzero(groups.counts > 1)
    if len(multi) == 0:
        return np.zeros(n_docs)
    f = cand[groups.first[multi]]  # global position of each repeated n-gram's first occurrence
    counts = groups.counts[multi]
    chars = prefix[f + n] - prefix[f]
    # Keep, per document, the groups with the most occurrences, of those the ones with the most
    # characters, of those the one that occurs first.
    for tie_break in (0, 1, 2):
        values = (counts, chars, -f)[tie_break]
        d = doc[f]
        starts = np.flatnonzero(np.append(True, d[1:] != d[:-1]))
        best = np.repeat(np.maximum.reduceat(values, starts), np.diff(np.append(starts, len(d))))
        keep = values == best
        multi, f, counts, chars = multi[keep], f[keep], counts[keep], chars[keep]
    winner = np.zeros(len(groups.counts), bool)
    winner[multi] = True
    return _covered_chars(cand[winner[groups.ids]], n, prefix, doc, n_docs)
