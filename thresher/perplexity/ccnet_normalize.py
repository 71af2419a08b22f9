"""CCNet text normalisation, exactly as CCNet applies it before KenLM scoring, and fast.

The rules are those of `cc_net/text_normalizer.py::normalize(line)` with its defaults
(accent=True, case=True, numbers=True, punct=1), applied in this order to one line:

1. `strip()`: leading and trailing whitespace (Unicode whitespace, as `str.strip`) goes; a line
   that is then empty is returned empty and nothing else happens to it.
2. lower-casing with `str.lower()` (full Unicode case mapping: "İ" → "i̇", final sigma "Σ" → "ς").
3. accent stripping: Unicode NFD, then every character of category Mn (non-spacing mark) is
   dropped ("café" → "cafe", "ﬁ" stays, since NFD leaves compatibility characters alone).
4. digits: every character of category Nd (any script's decimal digit, "٣" and "３" included)
   becomes "0".
5. Unicode punctuation: the 34 characters of `UNICODE_PUNCT` are replaced ("“" → '"', "—" → " - ",
   "…" → "...", "，" → ","). CCNet's table maps "１" (fullwidth one) to '"', but rule 4 has already
   made it "0", so that entry never fires (in CCNet either); "‘" is not in the table and stays.
6. non-printing characters: U+0000–U+001F and U+007F–U+009F are removed (tab, CR and NEL among
   them). Nothing else is removed: U+00A0 and other Unicode spaces stay.

Nothing else changes: no whitespace collapsing, no tokenisation, no NFKC.

`normalize_line` applies the rules to one string, `normalize_lines` to each line of a document
(split on "\\n"), which is what the KenLM scorer and the KenLM trainer use. Both are exactly equal to
`reference_normalize_line`, a literal per-character transcription of the rules kept for tests and
benchmarks (tested on C4, Wikipedia and the Universal Declaration of Human Rights in 388 languages).

Why it is fast (bench/kenlm_overhead.py measures it against the literal version):
- the whole document is transformed at once, not line by line: each rule above is per character
  (lower-casing's only context rule, final sigma, and NFD's mark reordering both stop at "\\n"),
  so only `strip` needs the lines;
- ASCII text (most web text) skips NFD and the Unicode tables: its only rules are lower-casing,
  ASCII digits and ASCII control characters, one `bytes.translate` over its UTF-8 encoding;
- non-ASCII text is NFD-normalised in C, then encoded to ASCII with a registered error handler:
  the C encoder copies ASCII runs and calls the handler only for each run of non-ASCII characters,
  which it rewrites with one `str.translate` through a precomputed code-point table (rules 3-6)
  and returns as UTF-8 bytes; a last `bytes.translate` handles the ASCII digits and controls.

Deliberate difference from CCNet's pipeline (not from its normaliser): CCNet's `mine.py`
normalises a whole document before SentencePiece, and rule 6 deletes its newlines (gluing the
last word of each line to the first of the next), so CCNet scores each document as one line.
thresher normalises and scores each line, as CCNet's own `DocLM(normalize=True)` does.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

__all__ = [
    "UNICODE_PUNCT",
    "NON_PRINTING_CODEPOINTS",
    "normalize_line",
    "normalize_lines",
    "normalize_document",
    "reference_normalize_line",
]

# Rule 5, CCNet's table (same keys and replacements).
UNICODE_PUNCT: dict[str, str] = {
    "\uff0c": ",",  # ， fullwidth comma
    "\u3002": ".",  # 。 ideographic full stop
    "\u3001": ",",  # 、 ideographic comma
    "\u201e": '"',  # „
    "\u201d": '"',  # ”
    "\u201c": '"',  # “
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\uff11": '"',  # １ fullwidth digit one: never fires, rule 4 turns it into "0" first
    "\u300d": '"',  # 」
    "\u300c": '"',  # 「
    "\u300a": '"',  # 《
    "\u300b": '"',  # 》
    "\u00b4": "'",  # ´ acute accent
    "\u2236": ":",  # ∶ ratio
    "\uff1a": ":",  # ： fullwidth colon
    "\uff1f": "?",  # ？
    "\uff01": "!",  # ！
    "\uff08": "(",  # （
    "\uff09": ")",  # ）
    "\uff1b": ";",  # ；
    "\u2013": "-",  # – en dash
    "\u2014": " - ",  # — em dash
    "\uff0e": ". ",  # ． fullwidth full stop
    "\uff5e": "~",  # ～
    "\u2019": "'",  # ’ right single quotation mark
    "\u2026": "...",  # … ellipsis
    "\u2501": "-",  # ━ box drawing heavy horizontal
    "\u3008": "<",  # 〈
    "\u3009": ">",  # 〉
    "\u3010": "[",  # 【
    "\u3011": "]",  # 】
    "\uff05": "%",  # ％
    "\u25ba": "-",  # ►
}

# Rule 6: C0 controls and DEL + C1 controls.
NON_PRINTING_CODEPOINTS: tuple[int, ...] = (*range(0, 32), *range(127, 160))


# -- the literal version: the rules as written, one character at a time ---------------------------

_DIGIT_RE = re.compile(r"\d")  # str patterns: \d is exactly category Nd
_NON_PRINTING_RE = re.compile("[" + "".join(map(chr, NON_PRINTING_CODEPOINTS)) + "]")


def reference_normalize_line(line: str) -> str:
    """The rules of the module docstring, transcribed literally (slow; for tests and benchmarks)."""
    line = line.strip()
    if not line:
        return line
    line = line.lower()
    line = "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")
    line = _DIGIT_RE.sub("0", line)
    line = "".join(UNICODE_PUNCT.get(c, c) for c in line)
    return _NON_PRINTING_RE.sub("", line)


# -- the fast version ------------------------------------------------------------------------------

_MAX_CODEPOINT = 0x110000

# ASCII part of rules 4 and 6 as one bytes.translate. In UTF-8 every byte below 0x80 is an ASCII
# character (never part of a multi-byte sequence), so this is safe on any UTF-8 encoded text.
_ASCII_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_ASCII_DELETE_KEEP_NEWLINE = bytes(c for c in NON_PRINTING_CODEPOINTS if c < 128 and c != 10)
_ASCII_DELETE_ALL = bytes(c for c in NON_PRINTING_CODEPOINTS if c < 128)

# Non-ASCII part of rules 3-6 as a code-point table for str.translate. A list indexed by code point
# (identity everywhere else) is several times faster than a dict: a dict miss raises KeyError
# inside str.translate for every unmapped character. Built on first use (~0.15 s).
_TABLE: list | None = None
_ERROR_HANDLER = "thresher.ccnet_normalize"


def _build_table() -> list:
    table: list = list(range(_MAX_CODEPOINT))
    for code in range(128, _MAX_CODEPOINT):
        category = unicodedata.category(chr(code))
        if category == "Mn":
            table[code] = None
        elif category == "Nd":
            table[code] = "0"
    for char, replacement in UNICODE_PUNCT.items():
        if unicodedata.category(char) != "Nd":  # rule 4 comes first ("１")
            table[ord(char)] = replacement
    for code in NON_PRINTING_CODEPOINTS:
        if code >= 128:
            table[code] = None
    return table


def _translate_non_ascii(error: UnicodeError) -> tuple[bytes, int]:
    # Called by the ASCII encoder for each run of non-ASCII characters; returns their normalised
    # form as UTF-8 (bytes from an error handler are copied into the output as they are).
    if not isinstance(error, UnicodeEncodeError):
        raise error
    run = error.object[error.start : error.end].translate(_TABLE)
    return run.encode("utf-8", "surrogatepass"), error.end


codecs.register_error(_ERROR_HANDLER, _translate_non_ascii)


def _ensure_table() -> None:
    global _TABLE
    if _TABLE is None:
        _TABLE = _build_table()


def _transform(text: str, delete: bytes) -> str:
    """Rules 2-6 on already stripped text; `delete` says whether "\\n" is removed too."""
    text = text.lower()
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_DIGITS, delete).decode("ascii")
    _ensure_table()
    text = unicodedata.normalize("NFD", text)
    encoded = text.encode("ascii", _ERROR_HANDLER)
    return encoded.translate(_ASCII_DIGITS, delete).decode("utf-8", "surrogatepass")


def normalize_line(line: str) -> str:
    """CCNet's `normalize(line)`: the six rules of the module docstring on one string."""
    line = line.strip()
    if not line:
        return line
    return _transform(line, _ASCII_DELETE_ALL)


def normalize_document(text: str) -> str:
    """Every line of `text` (split on "\\n") normalised, joined again with "\\n".

    Equal to `"\\n".join(normalize_line(l) for l in text.split("\\n"))`, much faster.
    """
    return _transform("\n".join([line.strip() for line in text.split("\n")]), _ASCII_DELETE_KEEP_NEWLINE)


def normalize_lines(text: str) -> list[str]:
    """`[normalize_line(l) for l in text.split("\\n")]`, much faster (see the module doc)."""
    return normalize_document(text).split("\n")
