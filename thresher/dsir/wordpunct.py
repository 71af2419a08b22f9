"""`WordPunctTokenizer().tokenize(text.lower())` for a whole Arrow batch at once, in numpy.

The reference tokenises with the pattern `\\w+|[^\\w\\s]+` on NLTK's engine (the third-party `regex`
module). That pattern only classifies characters (word, space, other) and takes maximal runs of
word or of other characters, so a tokeniser that classifies every character as `regex` does gives
the same tokens. Here:

- Lowercasing is Arrow's `utf8_lower` (C++, per code point). It and Python's `str.lower` disagree
  on a few characters (other Unicode versions, multi-character mappings such as U+0130, and the
  context-dependent final sigma of U+03A3); those are found once per process by lowercasing every
  code point with both, and a document containing one is lowercased by Python instead.
- Classifying: a lookup table of every code point's class, built once per process by running
  `regex`'s own `\\w` and `\\s` over a string of all code points, so every script, digit and
  separator is classified exactly as the reference's engine does (nothing falls back to it).
  ASCII bytes are classified straight from the UTF-8 bytes; a multi-byte character is decoded at
  its lead byte and its continuation bytes take its class.
- Runs: a token starts where the class changes (or a document starts) and is not a space. The
  tokens become one Arrow string array without a per-token Python object: either slices of the
  lowercased text that run on to the next token (the whitespace after a token included; what the
  featurizer hashes, which copies nothing), or the bare tokens over a copy of every non-space byte.

The tables take ~2.2 MB and ~0.05 s to build, once per process (plus ~0.3 s and ~27 MB for Arrow's
compute functions, the first time a process uses any).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex

SPACE, WORD, OTHER = 0, 1, 2
_FLAGS = regex.UNICODE | regex.MULTILINE | regex.DOTALL  # the reference's (NLTK's RegexpTokenizer)
_N_CODE_POINTS = 0x110000
_BLOCK = 0x4000  # code points classified at a time while building the tables
_TAKE_BLOCK = 1 << 18  # bytes classified at a time


class _Tables(NamedTuple):
    char_class: np.ndarray  # uint8 (0x110000,): SPACE, WORD or OTHER as `regex` classifies the code point
    ascii_class: np.ndarray  # uint8 (256,): the class of an ASCII byte (the rest are overwritten)
    python_lower: np.ndarray  # bool (0x110000,): Arrow's lowercase of this code point is not Python's


_tables: _Tables | None = None
_tables_lock = threading.Lock()


def _classify(code_points: np.ndarray, char_class: np.ndarray, python_lower: np.ndarray) -> None:
    """Fill both tables for some code points (no surrogates: no valid UTF-8 holds them)."""
    text = code_points.tobytes().decode("utf-32-le")
    for pattern, label in ((r"\s+", SPACE), (r"\w+", WORD)):
        for run in regex.finditer(pattern, text, _FLAGS):
            char_class[code_points[run.start() : run.end()]] = label
    # Python's lowercase of every code point, aligned with `code_points`. Only U+0130 lowercases to
    # two characters (checked), and U+03A3's mapping depends on its neighbours: both go to Python.
    python = text.lower()
    if 0x130 in code_points:
        dotted = int(np.searchsorted(code_points, 0x130))
        if python[dotted : dotted + 2] != "i\u0307":
            raise RuntimeError("str.lower of U+0130 is not 'i\u0307' in this Python")
        python = python[: dotted + 1] + python[dotted + 2 :]
    if len(python) != len(text):
        raise RuntimeError("str.lower changes the length of other characters than U+0130 in this Python")
    # Arrow maps each code point to one code point, whatever its neighbours: its lowercase of the
    # string of these code points is each one's lowercase. Should that change, every non-ASCII
    # character goes to Python, which is only slower.
    arrow = pc.utf8_lower(pa.array([text], pa.large_string()))[0].as_py()
    if len(arrow) != len(text):
        python_lower[np.maximum(code_points, 0x80)] = True
        return
    differs = np.frombuffer(python.encode("utf-32-le"), dtype="<u4") != np.frombuffer(
        arrow.encode("utf-32-le"), dtype="<u4")
    python_lower[code_points[differs]] = True


def _build_tables() -> _Tables:
    """Both tables, a block of code points at a time (so that the temporary strings stay small:
    whole, they would leave ~60 MB of freed memory with the allocators)."""
    char_class = np.full(_N_CODE_POINTS, OTHER, dtype=np.uint8)
    python_lower = np.zeros(_N_CODE_POINTS, dtype=bool)
    for start in range(0, _N_CODE_POINTS, _BLOCK):
        code_points = np.arange(start, start + _BLOCK, dtype="<u4")
        _classify(code_points[(code_points < 0xD800) | (code_points > 0xDFFF)], char_class, python_lower)
    python_lower[[0x130, 0x3A3]] = True
    return _Tables(char_class, char_class[:256].copy(), python_lower)


def tables() -> _Tables:
    global _tables
    if _tables is None:
        with _tables_lock:
            if _tables is None:
                _tables = _build_tables()
    return _tables


def _string_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64 from 0, UTF-8 bytes uint8) of a large_string array, honouring its slice offset."""
    raw_offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    start, end = int(raw_offsets[0]), int(raw_offsets[-1])
    data = texts.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8)[start:end] if data is not None else np.empty(0, np.uint8)
    return raw_offsets - start, data


def _code_points_at(data: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The code points of the multi-byte UTF-8 characters whose lead bytes are at `leads` (valid
    UTF-8, as Arrow guarantees), and each one's byte length."""
    b0 = data[leads].astype(np.uint32)
    length = 2 + (b0 >= 0xE0).astype(np.int64) + (b0 >= 0xF0)
    code = np.where(length == 2, b0 & 0x1F, np.where(length == 3, b0 & 0x0F, b0 & 0x07))
    last = len(data) - 1  # a continuation byte is always there in valid UTF-8; clip for the rest
    for k in (1, 2, 3):
        more = length > k
        code = np.where(more, (code << 6) | (data[np.minimum(leads + k, last)].astype(np.uint32) & 0x3F), code)
    return code, length


def as_large_strings(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """One contiguous large_string array, nulls as empty strings."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if texts.type != pa.large_string():
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    return texts


def lowercase(texts: pa.LargeStringArray) -> pa.LargeStringArray:
    """`str.lower` of every text: Arrow's, except for the texts holding a character on which the two
    disagree, which Python lowercases."""
    lowered = pc.utf8_lower(texts)
    offsets, data = _string_buffers(texts)
    leads = np.flatnonzero(data >= 0xC0)  # Arrow and Python agree on ASCII
    if len(leads):
        code, _ = _code_points_at(data, leads)
        suspect = leads[tables().python_lower[code]]
        if len(suspect):
            docs = np.unique(np.searchsorted(offsets, suspect, side="right") - 1)
            mask = np.zeros(len(texts), dtype=bool)
            mask[docs] = True
            python = [text.lower() for text in texts.take(pa.array(docs)).to_pylist()]
            lowered = pc.replace_with_mask(lowered, pa.array(mask), pa.array(python, pa.large_string()))
    return lowered


def tokenize_batch(texts: pa.Array | pa.ChunkedArray, *, trailing_space: bool = False
                   ) -> tuple[pa.LargeStringArray, np.ndarray]:
    """(every token of every text, in order, as one string array; tokens per text, int64).

    With `trailing_space`, each token keeps the whitespace that follows it (up to the next token,
    possibly in the next text): the strings are then slices of the lowercased text itself, which
    saves copying the tokens out, and `token.rstrip(space_chars())` is the token."""
    lowered = lowercase(as_large_strings(texts))
    offsets, data = _string_buffers(lowered)
    table = tables()
    classes = np.empty(len(data), dtype=np.uint8)
    for start in range(0, len(data), _TAKE_BLOCK):  # np.take makes its indices intp: 8 bytes a byte, whole
        np.take(table.ascii_class, data[start : start + _TAKE_BLOCK], out=classes[start : start + _TAKE_BLOCK])
    leads = np.flatnonzero(data >= 0xC0)
    if len(leads):
        code, length = _code_points_at(data, leads)
        lead_class = table.char_class[code]
        classes[leads] = lead_class
        for k in (1, 2, 3):
            more = length > k
            classes[leads[more] + k] = lead_class[more]
    # starts[i]: a token starts at byte i; starts[len(data)] closes the last one, so that the
    # positions of the True bytes are the token offsets of `trailing_space` form as they are
    starts = np.empty(len(data) + 1, dtype=bool)
    starts[-1] = True
    if len(data):
        starts[0] = True
        np.not_equal(classes[1:], classes[:-1], out=starts[1:-1])
        starts[offsets[:-1][offsets[:-1] < len(data)]] = True  # a document's first character
        np.logical_and(starts[:-1], classes, out=starts[:-1])  # not a space (SPACE is 0)
    token_offsets = np.flatnonzero(starts)
    del starts
    per_text = np.diff(np.searchsorted(token_offsets[:-1], offsets))
    if trailing_space:
        # the strings are views into the lowered array's own data buffer
        token_offsets += np.frombuffer(lowered.buffers()[1], dtype=np.int64)[lowered.offset]
        tokens = pa.LargeStringArray.from_buffers(len(token_offsets) - 1, pa.py_buffer(token_offsets),
                                                  lowered.buffers()[2] or pa.py_buffer(b""))
        return tokens, per_text
    keep = classes.astype(bool)
    kept = np.cumsum(keep, dtype=np.int64)
    token_offsets[:-1] = kept[token_offsets[:-1]] - 1  # cumsum counts the token's own first byte
    token_offsets[-1] = kept[-1] if len(kept) else 0
    tokens = pa.LargeStringArray.from_buffers(len(token_offsets) - 1, pa.py_buffer(token_offsets),
                                              pa.py_buffer(data[keep]))
    return tokens, per_text


_space_chars: str | None = None


def space_chars() -> str:
    """Every character `regex` counts as whitespace (`\\s`), for `str.rstrip`."""
    global _space_chars
    if _space_chars is None:
        _space_chars = "".join(map(chr, np.flatnonzero(tables().char_class == SPACE).tolist()))
    return _space_chars
