"""Text normalisation and word tokenisation for dedup, vectorised over a whole Arrow batch.

The normalisation (version `NORMALIZER_VERSION`) is defined by `reference_tokens`, a few lines of
plain Python; `tokenize_batch` computes exactly the same tokens for a batch of documents with
numpy over the batch's UTF-8 bytes (tests check the two agree on real multilingual text):

1. A text that is not pure ASCII is Unicode-NFKC-normalised (fullwidth forms, ligatures,
   superscripts and the like fold to their plain forms). ASCII text is NFKC-invariant.
2. Lowercase (Python's `str.lower`).
3. Every ASCII digit becomes `0`, so that counters, dates and prices do not hide a near-duplicate
   (as CCNet and datatrove do).
4. Tokens are the maximal runs of characters that are not separators. Separators are every ASCII
   character other than `a-z0-9`, and the code points U+0080-U+00BF (Latin-1 controls and
   punctuation), U+2000-U+2BFF (general punctuation, symbols, arrows, box drawing, dingbats),
   U+3000-U+303F (CJK punctuation), U+FE00-U+FE0F (variation selectors), U+FEFF (BOM) and
   U+1F000-U+1FFFF (emoji). Letters of every script are kept as they are, so non-Latin text
   deduplicates on its own words.

Steps 1-2 run in Python (`unicodedata`) only for the documents holding a code point that cannot be
normalised byte-wise in place (`_classify`: ligatures, circled digits, combining marks, ...); curly
quotes, dashes, ellipses and accented letters are handled in numpy.

A change to any of this changes every signature: bump `NORMALIZER_VERSION`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NORMALIZER_VERSION = "1"

_REFERENCE_SEPARATORS = re.compile(
    "[\x00-\x2f\x3a-\x60\x7b-\x7f\u0080-\u00bf\u2000-\u2bff\u3000-\u303f\ufe00-\ufe0f\ufeff"
    "\U0001f000-\U0001ffff]+"
)
_DIGIT = re.compile("[0-9]")


def normalize_unicode(text: str) -> str:
    """Steps 1-2: NFKC (for non-ASCII text) and lowercase."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.lower()


def reference_tokens(text: str) -> list[str]:
    """The specification of the dedup tokens of `text`, in plain Python (slow; for tests and docs)."""
    text = _DIGIT.sub("0", normalize_unicode(text))
    return [token for token in _REFERENCE_SEPARATORS.split(text) if token]


def reference_normalized_text(text: str) -> str:
    """The normalised text: the tokens joined by single spaces."""
    return " ".join(reference_tokens(text))


# Byte -> canonical byte for ASCII (0 marks a separator); bytes >= 0x80 map to themselves and the
# multi-byte separators are cleared afterwards.
_CANON = np.zeros(256, dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyz":
    _CANON[_c] = _c
    _CANON[_c - 32] = _c  # A-Z -> a-z
_CANON[ord("0") : ord("9") + 1] = ord("0")
_CANON[0x80:] = np.arange(0x80, 0x100, dtype=np.uint8)


@dataclass(frozen=True)
class TokenizedBatch:
    """The tokens of a batch of documents as spans of one canonical byte buffer.

    `codes` is the batch's normalised UTF-8 with every separator byte set to 0; token `t` is
    `codes[token_starts[t]:token_ends[t]]`, and document `d` owns tokens
    `doc_token_offsets[d]:doc_token_offsets[d + 1]`.
    """

    codes: np.ndarray
    token_starts: np.ndarray
    token_ends: np.ndarray
    doc_token_offsets: np.ndarray

    @property
    def num_docs(self) -> int:
        return len(self.doc_token_offsets) - 1

    @property
    def tokens_per_doc(self) -> np.ndarray:
        return np.diff(self.doc_token_offsets)

    def tokens(self, doc: int) -> list[str]:
        """The tokens of one document as strings (for tests and debugging)."""
        lo, hi = self.doc_token_offsets[doc], self.doc_token_offsets[doc + 1]
        return [bytes(self.codes[s:e]).decode("utf-8") for s, e in
                zip(self.token_starts[lo:hi], self.token_ends[lo:hi])]


def _as_large_string(texts) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(texts, type=pa.large_string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    if not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.large_string())
    return texts


# How each non-ASCII code point is normalised without the per-document Python NFKC + lower (the
# slow part of a batch: ~40 us per non-ASCII document). State per code point: 0 not yet classified,
# 1 unchanged, 2 replaced in place by bytes of the same length, 3 the document goes through Python.
# Filled lazily from `unicodedata`, so the fast path follows the running Python's Unicode tables
# exactly as `reference_tokens` does.
_UNKNOWN, _UNCHANGED, _REPLACED, _NEEDS_PYTHON = 0, 1, 2, 3
_CODE_POINT_STATE = np.zeros(0x110000, dtype=np.uint8)
_REPLACEMENTS: dict[int, bytes] = {}
# Hangul vowel and trailing-consonant jamo compose algorithmically (no `decomposition()` entry).
_HANGUL_SECOND = frozenset(range(0x1161, 0x1176)) | frozenset(range(0x11A8, 0x11C3))


@functools.cache
def _second_of_composition() -> frozenset[int]:
    """Code points that canonical composition can merge into the character before them."""
    seconds = set(_HANGUL_SECOND)
    for cp in range(0x80, 0x110000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(int(parts[1], 16))
    return frozenset(seconds)


def _classify(char: str) -> tuple[int, bytes]:
    """The state of a code point and, for `_REPLACED`, its replacement bytes.

    NFKC + lower of a text is the concatenation of NFKC + lower of its characters when every
    character is a starter (combining class 0) whose compatibility decomposition begins with a
    starter that cannot compose with a preceding character: then NFKC decomposes, reorders and
    recomposes each character within itself (no ASCII character is the second of a composition, so
    ASCII qualifies). str.lower is per character except the final-sigma rule, so Σ stays in Python.
    Such a character is replaced by its normal form when that is one character of the same UTF-8
    length, and by spaces when its normal form is all separators (token hashes do not depend on
    positions)."""
    if 0xD800 <= ord(char) < 0xE000:  # a surrogate: not UTF-8, leave the error to Python
        return _NEEDS_PYTHON, b""
    seconds = _second_of_composition()
    first = unicodedata.normalize("NFKD", char)[0]
    normal = unicodedata.normalize("NFKC", char).lower()
    if (unicodedata.combining(char) or unicodedata.combining(first) or ord(first) in seconds
            or ord(char) in seconds or "\u03a3" in char + unicodedata.normalize("NFKC", char)):
        return _NEEDS_PYTHON, b""
    if normal == char:
        return _UNCHANGED, b""
    width = len(char.encode())
    if not _REFERENCE_SEPARATORS.sub("", normal):
        return _REPLACED, b" " * width
    if len(normal) == 1 and len(normal.encode()) == width:  # leaves the lead bytes where they were
        return _REPLACED, normal.encode()
    return _NEEDS_PYTHON, b""


def _code_points(raw: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """The code points of the multi-byte UTF-8 sequences that start at `leads`."""
    last = len(raw) - 1
    lead = raw[leads].astype(np.int32)
    b1, b2, b3 = (raw[np.minimum(leads + k, last)].astype(np.int32) & 0x3F for k in (1, 2, 3))
    cp = np.where(lead < 0xE0, ((lead & 0x1F) << 6) | b1,
                  np.where(lead < 0xF0, ((lead & 0x0F) << 12) | (b1 << 6) | b2,
                           ((lead & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3))
    return np.minimum(cp, 0x10FFFF)


def _code_point_states(raw: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The code points starting at `leads` and their states, classifying new ones."""
    cps = _code_points(raw, leads)
    state = _CODE_POINT_STATE[cps]
    unknown = cps[state == _UNKNOWN]
    if unknown.size:
        for cp in np.unique(unknown).tolist():
            state_of_cp, replacement = _classify(chr(cp))
            if replacement:  # stored before the state that points to it (another thread may read it)
                _REPLACEMENTS[cp] = replacement
            _CODE_POINT_STATE[cp] = state_of_cp
        state = _CODE_POINT_STATE[cps]
    return cps, state


def _replace_in_place(raw: np.ndarray, leads: np.ndarray, cps: np.ndarray, state: np.ndarray) -> np.ndarray:
    """The bytes with every `_REPLACED` code point replaced (a copy when there is one)."""
    replaced = state == _REPLACED
    if not replaced.any():
        return raw
    raw = raw.copy()  # Arrow's buffer is read-only
    at, which = leads[replaced], cps[replaced]
    for cp in np.unique(which).tolist():
        positions = at[which == cp]
        for k, byte in enumerate(_REPLACEMENTS[cp]):
            raw[positions + k] = byte
    return raw


def _normalize_rows(texts: pa.Array, rows: np.ndarray) -> pa.Array:
    mask = pa.array(rows, type=pa.bool_())
    originals = pc.filter(texts, mask).to_pylist()
    replaced = pa.array([normalize_unicode(t) for t in originals], type=pa.large_string())
    return pc.replace_with_mask(texts, mask, replaced)


def _utf8_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The batch's UTF-8 bytes and int64 document offsets into them (starting at 0), zero-copy."""
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    data = texts.buffers()[2]
    raw = (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))
    return raw[offsets[0] : offsets[-1]], offsets - offsets[0]


def _clear_multibyte_separators(raw: np.ndarray, leads: np.ndarray, codes: np.ndarray) -> None:
    if not leads.size:
        return
    last = len(raw) - 1
    lead = raw[leads]
    b1 = raw[np.minimum(leads + 1, last)]
    b2 = raw[np.minimum(leads + 2, last)]
    two = lead == 0xC2                                                    # U+0080-U+00BF
    three = (
        ((lead == 0xE2) & (b1 <= 0xAF))                                   # U+2000-U+2BFF
        | ((lead == 0xE3) & (b1 == 0x80))                                 # U+3000-U+303F
        | ((lead == 0xEF) & (((b1 == 0xB8) & (b2 <= 0x8F)) | ((b1 == 0xBB) & (b2 == 0xBF))))
    )
    four = (lead == 0xF0) & (b1 == 0x9F)                                  # U+1F000-U+1FFFF
    for mask, width in ((two, 2), (three, 3), (four, 4)):
        starts = leads[mask]
        for k in range(width):
            codes[np.minimum(starts + k, last)] = 0


def _canonical_bytes(raw: np.ndarray, out: np.ndarray) -> None:
    """out = _CANON[raw] in uint8 arithmetic: a table lookup converts its 1-byte indices to 8-byte
    ones first, which made it 2.5x slower. Byte classes are disjoint, so their terms add up."""
    lowered = raw | np.uint8(0x20)
    letter = (lowered - np.uint8(ord("a"))) < np.uint8(26)  # uint8 wraps: bytes below "a" fail too
    digit = (raw - np.uint8(ord("0"))) < np.uint8(10)
    np.multiply(raw, raw >= np.uint8(0x80), out=out)          # UTF-8 lead/continuation bytes as they are
    out += lowered * letter
    out += np.uint8(ord("0")) * digit


def tokenize_batch(texts) -> TokenizedBatch:
    """Tokenise a batch (Arrow string array or list of str) as `reference_tokens` does, vectorised."""
    texts = _as_large_string(texts)
    raw, offsets = _utf8_bytes(texts)
    # Lead bytes of 2-4 byte sequences (continuation bytes are < 0xC0; 0xC0/0xC1 are not UTF-8).
    leads = np.flatnonzero(raw >= 0xC0)
    if leads.size:
        cps, state = _code_point_states(raw, leads)
        python_rows = np.zeros(len(texts), dtype=bool)
        python_rows[np.searchsorted(offsets, leads[state == _NEEDS_PYTHON], side="right") - 1] = True
        if python_rows.any():  # Python normalises these documents from their original text
            texts = _normalize_rows(texts, python_rows)
            raw, offsets = _utf8_bytes(texts)
            leads = np.flatnonzero(raw >= 0xC0)
            cps, state = _code_point_states(raw, leads)
            state[python_rows[np.searchsorted(offsets, leads, side="right") - 1]] = _UNCHANGED  # already normal
        raw = _replace_in_place(raw, leads, cps, state)
    n = len(raw)
    # Pad a separator on each side so every token has a rising and a falling edge in the buffer.
    padded = np.zeros(n + 2, dtype=np.uint8)
    codes = padded[1 : n + 1]
    _canonical_bytes(raw, codes)
    _clear_multibyte_separators(raw, leads, codes)
    is_token = padded.astype(bool)
    # Edge i lies between bytes i - 1 and i: the k-th rising edge starts token k, the k-th falling one ends it.
    edges = np.flatnonzero(is_token[1:] != is_token[:-1])
    starts, ends = edges[0::2], edges[1::2]
    # Tokens never run across documents: split a token that straddles a document boundary.
    bounds = offsets[1:-1]
    straddling = np.unique(bounds[is_token[bounds] & is_token[bounds + 1]])  # empty documents repeat a bound
    if straddling.size:
        starts = np.insert(starts, np.searchsorted(starts, straddling), straddling)
        ends = np.insert(ends, np.searchsorted(ends, straddling), straddling)
    doc_token_offsets = np.searchsorted(starts, offsets)
    return TokenizedBatch(codes, starts, ends, doc_token_offsets)
