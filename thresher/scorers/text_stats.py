"""Pure text statistics shared by the heuristic scorers: word tokenisation and repetition measures.

Word tokenisation (one rule for every heuristic that counts words):

    a word is a run of word characters (`\\w`: letters, digits, underscore, in any script) and
    combining marks (Hindi vowel signs, Arabic harakat, decomposed accents), joined across a single
    inner hyphen, apostrophe (' or ’) or period ("e-mail", "don't", "U.S", "3.14", "example.com"),
    and across a comma, colon or slash between digits ("1,000", "10:30", "24/7"). Everything else
    (punctuation, symbols, emoji, whitespace) separates words and is not a word.

datatrove tokenises with spaCy's per-language tokenizers (NLTK's `word_tokenize` in older
releases): about 80 C4 documents a second on one core here, against ~12,000 for this regex. They
also differ in ways that move the numbers a little: spaCy splits clitics and hyphens ("do", "n't";
"e", "-", "mail") and returns punctuation as tokens, which datatrove then counts in some
denominators (the alpha-word ratio, the symbol ratio, the newline ratio) but not in others (the
word count). Here punctuation is never a word, so every per-word ratio has the same denominator.
Scripts written without spaces (Chinese, Japanese, Thai) come out as one "word" per run of
characters, so word-based numbers are meaningless for them, as are the English-tuned Gopher rules.

The batch scorer runs the same rule in Rust's `regex` engine (through polars): `rust_word_pattern`
spells it with Python's own character classes written out as code point ranges (so both engines
agree on every character, whatever Unicode version each ships), and without the look-behind that
Rust's engine lacks. Both engines return the leftmost-first match, so they split text identically.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache
from itertools import accumulate

import numpy as np

# Python's `\w` leaves out combining marks, which would cut "हिन्दी" into three words. Only the
# Basic Multilingual Plane's marks are listed: with any code point above it, `re` checks a class
# range by range instead of by table, and tokenising gets several times slower.
_MARKS = re.escape(
    "".join(c for c in map(chr, range(0x10000)) if unicodedata.category(c).startswith("M"))
)
_WORD_CHAR = rf"[\w{_MARKS}]"
WORD_RE = re.compile(rf"{_WORD_CHAR}+(?:[-'’.]{_WORD_CHAR}+|(?<=\d)[,:/]\d+)*")
# A word without a letter consists of digits, underscores, joiners and marks only.
_NO_LETTER_RE = re.compile(rf"^[\d_\-'’.,:/{_MARKS}]+$", re.MULTILINE)


def _all_code_points() -> str:
    """Every code point but the surrogates, in order (index i is code point i, or i + 0x800 above them).
    Not cached: 4 MB, needed only while the cached patterns below are built."""
    points = np.arange(0x110000, dtype="<u4")
    return points[(points < 0xD800) | (points > 0xDFFF)].tobytes().decode("utf-32-le")


def python_class(pattern: str) -> str:
    """A Rust-regex character class matching exactly the characters Python's `re` matches with the
    one-character `pattern`, written as code point ranges."""
    ranges = []
    for run in re.finditer(f"(?:{pattern})+", _all_code_points()):
        lo, hi = run.start(), run.end() - 1
        lo, hi = (c + 0x800 if c >= 0xD800 else c for c in (lo, hi))
        ranges.append(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}")
    return f"[{''.join(ranges)}]"


@cache
def python_whitespace() -> str:
    """The characters `str.strip()` removes and `\\s` matches (`str.isspace`), for Rust's strip and regex."""
    return "".join(re.findall(r"\s", _all_code_points()))


@cache
def rust_word_pattern() -> str:
    """`WORD_RE` for Rust's regex engine. The look-behind `(?<=\\d)[,:/]\\d+` becomes a block that ends
    in a digit: a word is blocks joined by [-'’.], a block is either word characters ending in a
    digit followed by [,:/]-joined digit runs, or plain word characters (tried in that order, as
    the greedy Python pattern scans)."""
    w, d = python_class(_WORD_CHAR), python_class(r"\d")
    block = f"(?:{w}*{d}(?:[,:/]{d}+)+|{w}+)"
    return f"{block}(?:[-'’.]{block})*"


@cache
def rust_letter_class() -> str:
    """A word containing one of these characters has a letter (see `count_letter_words`)."""
    return python_class(rf"(?![\d_{_MARKS}]){_WORD_CHAR}")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def count_letter_words(tokens: list[str]) -> int:
    """How many words contain a letter (any word character but a digit or underscore)."""
    return len(tokens) - len(_NO_LETTER_RE.findall("\n".join(tokens)))


def duplicates(items: list[str]) -> tuple[int, int]:
    """(how many items repeat an earlier item, their total length): what removing repeats saves."""
    seen: set[str] = set()
    n_dup = dup_chars = 0
    for item in items:
        if item in seen:
            n_dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return n_dup, dup_chars


def _covered_chars(starts: list[int], n: int, prefix: list[int]) -> int:
    """Characters of the words covered by the n-grams starting at sorted `starts`, each once."""
    chars = 0
    end = 0
    for i in starts:
        lo = i if i > end else end
        end = i + n
        chars += prefix[end] - prefix[lo]
    return chars


def ngram_repetition(
    tokens: list[str], top_ns: tuple[int, ...], dup_ns: tuple[int, ...]
) -> tuple[list[float], list[float]]:
    """Gopher's n-gram repetition fractions, as fractions of the characters of all words.

    top (n in `top_ns`): characters covered by every occurrence of the most frequent n-gram; 0 when
    no n-gram occurs twice. Ties go to the longest n-gram, then to the one that occurs first.
    dup (n in `dup_ns`): characters covered by the occurrences of n-grams that repeat an earlier
    occurrence (what removing the repeats would save, as in datatrove and NeMo Curator).

    Overlapping occurrences count each word once, so every value lies in [0, 1], and the
    denominator is the characters of the words (not of the text), so whitespace and punctuation do
    not dilute it: a passage of distinct words written twice scores 0.5 for every dup n.

    An n-gram can occur twice only if both of its (n-1)-grams do, so the candidates for n are the
    positions i where the (n-1)-grams at i and i+1 both repeat. Each n builds on n-1 and only visits
    those candidates, which on prose shrink to a handful after n = 3; building every n-gram of every
    n instead is the cost that dominates naive implementations.
    """
    n_words = len(tokens)
    max_n = max((*top_ns, *dup_ns))
    top = dict.fromkeys(top_ns, 0.0)
    dup = dict.fromkeys(dup_ns, 0.0)
    prefix = [0, *accumulate(map(len, tokens))]
    total = prefix[-1]
    if n_words < 2 or total == 0:
        return [top[n] for n in top_ns], [dup[n] for n in dup_ns]

    # Level 1 uses the words themselves as ids (str hashes are cached); from level 2 on, an n-gram's
    # id is the position of its first occurrence, so keys stay pairs of small values at every n.
    counts = Counter(tokens)
    repeated = [i for i, w in enumerate(tokens) if counts[w] > 1]
    gram_ids: list[str] | dict[int, int] = tokens
    for n in range(2, max_n + 1):
        repeated_set = set(repeated)
        cand = [i for i in repeated if i + 1 in repeated_set]
        if not cand:
            break
        offset = n - 1
        keys = [(gram_ids[i], tokens[i + offset]) for i in cand]
        first_pos = dict(zip(reversed(keys), reversed(cand)))
        if n in top:
            counts = Counter(keys)
            best_count = max(counts.values())
            if best_count > 1:
                best = max(
                    (k for k, c in counts.items() if c == best_count),
                    key=lambda k: prefix[first_pos[k] + n] - prefix[first_pos[k]],
                )
                starts = [i for i, k in zip(cand, keys) if k == best]
                top[n] = _covered_chars(starts, n, prefix) / total
        last_pos = dict(zip(keys, cand))
        gram_ids = {}
        repeated = []
        starts = []
        for i, k in zip(cand, keys):
            f = first_pos[k]
            if f != last_pos[k]:
                repeated.append(i)
                gram_ids[i] = f
                if f != i:
                    starts.append(i)
        if n in dup:
            dup[n] = _covered_chars(starts, n, prefix) / total
    return [top[n] for n in top_ns], [dup[n] for n in dup_ns]
