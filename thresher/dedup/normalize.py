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

A change to any of this changes every signature: bump `NORMALIZER_VERSION`.
"""

from __future__ import annotations

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


def _normalize_non_ascii(texts: pa.Array) -> pa.Array:
    non_ascii = pc.invert(pc.string_is_ascii(texts))
    if not pc.any(non_ascii).as_py():
        return texts
    originals = pc.filter(texts, non_ascii).to_pylist()
    replaced = pa.array([normalize_unicode(t) for t in originals], type=pa.large_string())
    return pc.replace_with_mask(texts, non_ascii, replaced)


def _clear_multibyte_separators(raw: np.ndarray, codes: np.ndarray) -> None:
    leads = np.flatnonzero(raw >= 0xC2)  # lead bytes of 2-4 byte sequences (continuations are < 0xC0)
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


def tokenize_batch(texts) -> TokenizedBatch:
    """Tokenise a batch (Arrow string array or list of str) as `reference_tokens` does, vectorised."""
    texts = _normalize_non_ascii(_as_large_string(texts))
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    data = texts.buffers()[2]
    raw = (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))
    raw = raw[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    codes = _CANON[raw]
    _clear_multibyte_separators(raw, codes)

    is_token = codes != 0
    n = len(codes)
    # A token starts where a token byte follows a separator or opens a document, and ends where
    # one precedes a separator or closes a document: tokens never run across documents.
    before = np.zeros(n, dtype=bool)
    before[1:] = is_token[:-1]
    after = np.zeros(n, dtype=bool)
    after[:-1] = is_token[1:]
    bounds = offsets[(offsets > 0) & (offsets < n)]
    before[bounds] = False
    after[bounds - 1] = False
    starts = np.flatnonzero(is_token & ~before)
    ends = np.flatnonzero(is_token & ~after) + 1
    doc_token_offsets = np.searchsorted(starts, offsets)
    return TokenizedBatch(codes, starts, ends, doc_token_offsets)
