"""The heuristics scorer's columns for a whole batch: polars string expressions over the Arrow text.

Every column keeps the definition of `heuristics`' module docstring; this module only changes how
they are computed, and reproduces the first, per-document Python implementation exactly
(tests/scorers/test_heuristics_parity.py). Where the work runs, and why:

- polars (Rust, over the Arrow buffers): splitting lines, stripping, the per-line tests (endings,
  bullets, citations, sentence ends, a case-insensitive filter for javascript/policy/lorem ipsum),
  character counts, and tokenising lines into words. The regexes are the Python ones rewritten for
  Rust's engine with Python's own character classes (`text_stats.python_class`), so both engines
  agree on every character; Python's `str.strip` whitespace is passed explicitly, since Rust's
  differs (U+001C..U+001F).
- The per-word tests (length, letters, stop words) run once per distinct word of the batch and are
  spread to the words by id: a polars string operation costs ~50-70 ns per string whatever its
  pattern, which over every word (~430,000 in 1,024 C4 pages) was the largest cost after
  tokenising.
- Arrow's hash table + numpy (`heuristics_ngrams`): duplicate lines and paragraphs, and the n-gram
  repetition fractions. polars has no n-gram primitive, and its hash group-bys were no faster.
- Python, only where Rust could disagree and the rows are few: lowercasing the non-ASCII distinct
  words (for stop words) and the lines the case-insensitive filter finds (Rust's case mappings
  follow its own Unicode version); splitting paragraphs of the rare document containing a NUL
  character (the marker polars splits at).

Where the time goes (CPU time, 5,000 C4 pages in batches of 1,024, one shared core): tokenising
about a third, the n-gram levels about a third, word ids a tenth, everything else the rest.
"""

from __future__ import annotations

import os
import re
from functools import cache

# Shards are the unit of parallelism (one task per shard, one worker per core): polars' own pool of a
# thread per core inside every task would oversubscribe the cores. Read once, when polars is imported.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402

from thresher.scorers import heuristics_ngrams as ngrams
from thresher.scorers import text_stats

# Documents scored in one piece (see `batch_columns`); 2,048-4,096 measured fastest per document.
MAX_ROWS = 2048
# polars hands its strings to Arrow as string views without copying them (Arrow hashes those too).
_ARROW_VIEWS = pl.CompatLevel.newest()
_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")
# Defined here, re-exported by `heuristics` (whose docstring defines them), to avoid an import cycle.
BULLETS = ("•", "‣", "◦", "⁃", "▪", "●", "-", "*")
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


@cache
def _patterns() -> dict[str, str]:
    """The module's regexes for Rust's engine, built once per process (a few tenths of a second)."""
    ws = text_stats.python_whitespace()
    ws_class = "[" + "".join(f"\\x{{{ord(c):X}}}" for c in ws) + "]"
    digit = text_stats.python_class(r"\d")
    return {
        "ws": ws,
        "word": text_stats.rust_word_pattern(),
        "letter": text_stats.rust_letter_class(),
        "citation": rf"\[{digit}*\]|\[edit\]|\[citation needed\]",
        "sentence_end": rf"[.!?…]['\x22”’)\]]*(?:{ws_class}|$)",
        "bullet": "^(?:" + "|".join(re.escape(b) for b in BULLETS) + ")",
        "policy": "|".join(re.escape(p) for p in POLICY_SUBSTRINGS),
        "suspect": "(?i)" + "|".join(re.escape(p) for p in ("javascript", "lorem ipsum", *POLICY_SUBSTRINGS)),
    }


def _per_doc(doc: np.ndarray, values: np.ndarray | None, n_docs: int) -> np.ndarray:
    """Sum of `values` (or a count, when None) per document, as int64."""
    if values is None:
        return np.bincount(doc, minlength=n_docs)
    if values.dtype == bool:
        return np.bincount(doc[values], minlength=n_docs)
    return np.bincount(doc, weights=values, minlength=n_docs).astype(np.int64)


def _np(series: pl.Series) -> np.ndarray:
    return series.to_numpy()


def _stop_words(vocabulary: pl.Series, stop_words: tuple[str, ...]) -> np.ndarray:
    """Which distinct words are stop words once lowercased. ASCII words are lowercased by polars;
    the others by Python, since Rust's case mappings follow its own Unicode version."""
    ascii_words = _np(vocabulary.str.len_bytes() == vocabulary.str.len_chars())
    stop = _np(vocabulary.str.to_lowercase().is_in(list(stop_words))) & ascii_words
    others = np.flatnonzero(~ascii_words)
    wanted = frozenset(stop_words)
    stop[others] = [word.lower() in wanted for word in vocabulary.gather(others).to_list()]
    return stop


def batch_columns(text: pa.Array | pa.ChunkedArray, **params) -> dict[str, np.ndarray]:
    """Raw per-document counts for `HeuristicsScorer` (which turns them into its ratios); `params`
    are `_columns`'s keyword arguments (the scorer's settings).

    Batches over `MAX_ROWS` are scored `MAX_ROWS` documents at a time: the flat per-word arrays
    cost about 65 KB per C4 page (1.6 GB for 20,000 pages in one piece, which also ran at half the
    speed), and no value depends on the other documents of the batch."""
    if len(text) > MAX_ROWS:
        parts = [_columns(text.slice(i, MAX_ROWS), **params) for i in range(0, len(text), MAX_ROWS)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return _columns(text, **params)


def _columns(
    text: pa.Array | pa.ChunkedArray,
    *,
    stop_words: tuple[str, ...],
    min_words_per_line: int,
    max_word_chars: int,
    short_line_chars: int,
    top_ns: tuple[int, ...],
    dup_ns: tuple[int, ...],
) -> dict[str, np.ndarray]:
    p = _patterns()
    ws = p["ws"]
    texts = pl.Series("text", text).fill_null("")
    n_docs = len(texts)
    docs = pl.DataFrame({"text": texts}).with_row_index("doc")
    t = pl.col("text")
    per_doc = docs.select(
        n_chars=t.str.len_chars(),
        newlines=t.str.count_matches("\n", literal=True),
        hashes=t.str.count_matches("#", literal=True),
        ellipses=t.str.count_matches("...", literal=True) + t.str.count_matches("…", literal=True),
        curly=t.str.contains("{", literal=True) | t.str.contains("}", literal=True),
        has_blank_line=t.str.contains(_PARAGRAPH_RE.pattern),
    )
    n_chars = _np(per_doc["n_chars"]).astype(np.int64)

    # Lines: every "\n"-separated piece of a non-empty text ("" has no lines, as in Python).
    lines = (
        docs.filter(t.str.len_bytes() > 0)
        .select("doc", raw=t.str.split("\n"))
        .explode("raw")
        .with_columns(right=pl.col("raw").str.strip_chars_end(ws))
        .with_columns(line=pl.col("right").str.strip_chars_start(ws))
    )
    line_doc = _np(lines["doc"]).astype(np.int64)
    raw = lines.select(
        fw_punct=pl.col("right").str.contains(r"[.'\x22!?]$"),
        fw_short=pl.col("right").str.len_chars() <= short_line_chars,
        nonblank=pl.col("line").str.len_bytes() > 0,
    )
    n_raw_lines = _per_doc(line_doc, None, n_docs)
    fw_punct = _per_doc(line_doc, _np(raw["fw_punct"]), n_docs)
    fw_short = _per_doc(line_doc, _np(raw["fw_short"]), n_docs)

    # Non-blank lines, stripped: Gopher's, C4's and the duplicate measures' lines. Their words end
    # to end are the text's words (a word never spans a newline).
    kept = lines.filter(raw["nonblank"]).select("doc", "line")
    line = pl.col("line")
    cited = line.str.replace_all(p["citation"], "").str.strip_chars_end(ws)
    flags = kept.select(
        words=line.str.extract_all(p["word"]),
        n_chars=line.str.len_chars(),
        bullet=line.str.contains(p["bullet"]),
        ellipsis=line.str.ends_with("...") | line.str.ends_with("…"),
        terminal=cited.str.contains(r"[.?!\x22']$") & ~cited.str.ends_with("..."),
        sentences=cited.str.count_matches(p["sentence_end"]),
        # Case-insensitive matching finds every line whose lowercase holds one of the phrases (and
        # more: "ſ" for "s"): a cheap filter; the lines it finds are then searched exactly.
        suspect=line.str.contains(p["suspect"]),
    )
    kept_doc = _np(kept["doc"]).astype(np.int64)
    line_words = _np(flags["words"].list.len()).astype(np.int64)
    line_chars = _np(flags["n_chars"]).astype(np.int64)
    terminal = _np(flags["terminal"])
    short = line_words < min_words_per_line
    javascript, policy, lorem = (np.zeros(len(kept), bool) for _ in range(3))
    suspects = np.flatnonzero(_np(flags["suspect"]))
    # Python lowercases those few lines: Rust's lowercasing follows its own Unicode version.
    for row, text in zip(suspects, kept["line"].gather(suspects).to_list()):
        lower = text.lower()
        javascript[row] = "javascript" in lower
        policy[row] = any(phrase in lower for phrase in POLICY_SUBSTRINGS)
        lorem[row] = "lorem ipsum" in lower
    c4_kept = terminal & ~short & ~javascript & ~policy
    long_lines = np.flatnonzero(c4_kept & (line_chars > max_word_chars))
    if len(long_lines):
        longest = flags["words"].gather(long_lines).list.eval(pl.element().str.len_chars()).list.max()
        c4_kept[long_lines] = _np(longest.fill_null(0)) <= max_word_chars
    sentences = np.where(c4_kept, np.maximum(_np(flags["sentences"]), 1), 0)
    kept_lines = kept["line"].to_arrow(compat_level=_ARROW_VIEWS)
    dup_lines, dup_line_chars = ngrams.duplicates(kept_lines, kept_doc, line_chars, n_docs)

    # Words: the per-word tests run once per distinct word of the batch, then spread by id.
    words = flags["words"].explode(empty_as_null=False)
    word_doc = np.repeat(kept_doc, line_words)
    word_ids, is_first = ngrams.encode(words.to_arrow(compat_level=_ARROW_VIEWS))
    vocabulary = words.filter(pl.Series(is_first))
    word_chars = _np(vocabulary.str.len_chars()).astype(np.int64)[word_ids]
    letter = _np(vocabulary.str.contains(p["letter"]))[word_ids]
    stop = _stop_words(vocabulary, stop_words)[word_ids]
    top, dup = ngrams.ngram_repetition(word_ids, word_doc, word_chars, n_docs, top_ns, dup_ns)

    n_paras, dup_paras, dup_para_chars = _paragraphs(docs, _np(per_doc["has_blank_line"]), ws, n_docs)
    n_lines = _per_doc(kept_doc, None, n_docs)
    n_paras = np.where(_np(per_doc["has_blank_line"]), n_paras, n_lines > 0)
    return {
        "n_chars": n_chars,
        "newlines": _np(per_doc["newlines"]).astype(np.int64),
        "n_raw_lines": n_raw_lines,
        "n_lines": n_lines,
        "n_words": _per_doc(word_doc, None, n_docs),
        "word_chars": _per_doc(word_doc, word_chars, n_docs),
        "alpha_words": _per_doc(word_doc, letter, n_docs),
        "stop_words": _per_doc(word_doc, stop, n_docs),
        "hashes": _np(per_doc["hashes"]).astype(np.int64),
        "ellipses": _np(per_doc["ellipses"]).astype(np.int64),
        "bullet_lines": _per_doc(kept_doc, _np(flags["bullet"]), n_docs),
        "ellipsis_lines": _per_doc(kept_doc, _np(flags["ellipsis"]), n_docs),
        "dup_lines": dup_lines,
        "dup_line_chars": dup_line_chars,
        "n_paras": n_paras.astype(np.int64),
        "dup_paras": dup_paras,
        "dup_para_chars": dup_para_chars,
        **{f"top_{n}": top[n] for n in top_ns},
        **{f"dup_{n}": dup[n] for n in dup_ns},
        "c4_no_terminal": _per_doc(kept_doc, ~terminal, n_docs),
        "c4_short": _per_doc(kept_doc, short, n_docs),
        "lorem": _per_doc(kept_doc, lorem, n_docs) > 0,
        "curly": _np(per_doc["curly"]),
        "c4_javascript": _per_doc(kept_doc, javascript, n_docs),
        "c4_policy": _per_doc(kept_doc, policy, n_docs),
        "c4_sentences": _per_doc(kept_doc, sentences, n_docs),
        "fw_punct": fw_punct,
        "fw_short": fw_short,
    }


def _paragraphs(
    docs: pl.DataFrame, has_blank_line: np.ndarray, ws: str, n_docs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(paragraphs, repeated paragraphs, their characters) of the documents with a blank line; the
    others are one paragraph (or none) without repeats, which the caller fills in.

    `re.split` by the paragraph pattern is done in polars as a replacement of every match by a NUL
    character (leftmost-first and non-overlapping, as `re` matches) and a split at the NULs; the
    rare document that contains a NUL itself is split in Python."""
    t = pl.col("text")
    blank = docs.filter(pl.Series(has_blank_line))
    has_nul = blank["text"].str.contains("\x00", literal=True)
    paragraphs = (
        blank.filter(~has_nul)
        .select("doc", para=t.str.replace_all(_PARAGRAPH_RE.pattern, "\x00").str.split("\x00"))
        .explode("para")
        .select("doc", para=pl.col("para").str.strip_chars(ws))
        .filter(pl.col("para").str.len_bytes() > 0)
    )
    para_doc = _np(paragraphs["doc"]).astype(np.int64)
    lengths = _np(paragraphs["para"].str.len_chars()).astype(np.int64)
    n_paras = _per_doc(para_doc, None, n_docs)
    dup_paras, dup_chars = ngrams.duplicates(
        paragraphs["para"].to_arrow(compat_level=_ARROW_VIEWS), para_doc, lengths, n_docs
    )
    for row, text in blank.filter(has_nul).iter_rows():
        python_paragraphs = [para for para in map(str.strip, _PARAGRAPH_RE.split(text)) if para]
        n_paras[row] = len(python_paragraphs)
        dup_paras[row], dup_chars[row] = text_stats.duplicates(python_paragraphs)
    return n_paras, dup_paras, dup_chars
