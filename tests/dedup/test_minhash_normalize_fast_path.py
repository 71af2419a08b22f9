"""The per-code-point fast path of `tokenize_batch` (no Python NFKC/lower for most non-ASCII text)
against `reference_tokens`, on characters chosen to break a wrong per-character shortcut."""

from __future__ import annotations

import random
import unicodedata

import numpy as np

from thresher.dedup import normalize
from thresher.dedup.normalize import reference_tokens, tokenize_batch

# Unchanged (quotes, dashes, é, ©), replaced in place (Ø, µ, É, …, NBSP, thin space), and Python-only:
# ligatures and compatibility forms of another length (ﬀ, ™, ①, º), composing marks after ASCII
# (e + U+0301), Hangul jamo that compose with the syllable before them, Indic vowel signs that
# compose, Greek capital sigma (final-sigma rule), İ (lowercases to two characters), Kelvin sign.
ALPHABET = list("abcXYZ09 .,-") + list("’“”–—é©ØµÉ…\u00a0\u2009ﬀ™①ºΣİ\u212a") + [
    "\u0301", "\u0323", "\u1100", "\u1161", "\u11a8", "\uac00", "\u09c7", "\u09be", "\u0b47", "\u0b3e",
    "\u0f73", "\u03f9", "\u1e9e", "\ufb01", "\uff21", "\u00bd", "\u3000", "\U0001f600", "\ufe0f",
]


def test_random_mixes_of_tricky_characters_tokenize_as_the_reference():
    rng = random.Random(5)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 40))) for _ in range(3000)]
    batch = tokenize_batch(texts)
    mismatches = [i for i, text in enumerate(texts) if batch.tokens(i) != reference_tokens(text)]
    assert not mismatches, [(texts[i], batch.tokens(i), reference_tokens(texts[i])) for i in mismatches[:3]]


def test_fast_path_skips_python_only_for_characters_it_can_handle():
    texts = ["Ø café “x” … y", "e\u0301 ﬀ", "ΣΟΦΟΣ"]
    tokenize_batch(texts)
    state = normalize._CODE_POINT_STATE
    assert state[ord("’")] == state[ord("é")] == normalize._UNCHANGED
    assert state[ord("Ø")] == state[ord("…")] == normalize._REPLACED
    assert normalize._REPLACEMENTS[ord("Ø")] == "ø".encode() and normalize._REPLACEMENTS[ord("…")] == b"   "
    for char in "\u0301ﬀΣ":
        assert state[ord(char)] == normalize._NEEDS_PYTHON, char


def test_every_fast_path_character_in_the_bmp_is_exact_in_context():
    """Each BMP code point the fast path accepts, between ASCII letters and after every composing
    character class, normalises as its per-character replacement says."""
    chars = [chr(cp) for cp in range(0x80, 0x10000) if not 0xD800 <= cp < 0xE000]
    raw = np.frombuffer("".join(chars).encode(), dtype=np.uint8)
    leads = np.flatnonzero(raw >= 0xC0)
    cps, state = normalize._code_point_states(raw, leads)
    fast = cps[(state == normalize._UNCHANGED) | (state == normalize._REPLACED)].tolist()
    assert len(fast) > 30_000
    texts = [f"Ab{chr(cp)}cD" for cp in fast]
    batch = tokenize_batch(texts)
    for i, cp in enumerate(fast):
        assert reference_tokens(texts[i]) == batch.tokens(i), hex(cp)
        assert unicodedata.normalize("NFKC", "e" + chr(cp)) == "e" + unicodedata.normalize("NFKC", chr(cp)), hex(cp)
