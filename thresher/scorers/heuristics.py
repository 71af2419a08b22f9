"""Gopher, C4 and FineWeb quality signals as numbers, so that recipes state the rules in SQL.

The rules these columns serve (thresholds belong in recipes, shown here only as the usual values):

    Gopher quality (Rae et al. 2021, A.1.1)   50 <= gopher_word_count <= 100000,
        3 <= gopher_mean_word_length <= 10, gopher_hash_word_ratio <= 0.1,
        gopher_ellipsis_word_ratio <= 0.1, gopher_bullet_lines_ratio <= 0.9,
        gopher_ellipsis_lines_ratio <= 0.3, gopher_alpha_words_ratio >= 0.8,
        gopher_stop_word_count >= 2
    Gopher repetition (Table A1)   rep_dup_line_frac <= 0.3, rep_dup_para_frac <= 0.3,
        rep_dup_line_char_frac <= 0.2, rep_dup_para_char_frac <= 0.2,
        rep_top_{2,3,4}gram_char_frac <= 0.20, 0.18, 0.16,
        rep_dup_{5..10}gram_char_frac <= 0.15, 0.14, 0.13, 0.12, 0.11, 0.10
    C4 (Raffel et al. 2020)   NOT c4_has_lorem_ipsum, NOT c4_has_curly_brace,
        c4_sentence_count >= 5 (C4 also drops individual lines; a scorer cannot, so the line rules
        appear as fractions and counts, and the sentence count is taken over the lines C4 keeps)
    FineWeb   fineweb_line_punct_ratio > 0.12, fineweb_short_line_ratio < 0.67,
        fineweb_char_dup_ratio < 0.01, fineweb_list_ratio <= 0.3

Definitions (words as in `text_stats`):

- lines are `text.split("\\n")`. FineWeb's ratios count every line, blank ones too, as FineWeb
  does; Gopher's, C4's and the duplicate-line measures count only non-blank lines, compared after
  stripping surrounding whitespace (datatrove counts blank lines in Gopher's denominators, which
  makes its bullet rule nearly unreachable for lists with blank lines between items).
- paragraphs are the non-blank stripped chunks between blank lines.
- gopher_symbol_word_ratio is ("#" + "..." + "…") per word; the paper's rule applies to hashes and
  ellipses separately, hence also gopher_hash_word_ratio and gopher_ellipsis_word_ratio.
- gopher_alpha_words_ratio: words that contain a letter (not only digits, "_", joiners, marks)
  per word. gopher_stop_word_count counts words whose lowercase form is a stop word (datatrove
  compares case-sensitively, so "The" does not count there).
- a bullet line starts with one of `BULLETS`; an ellipsis line ends with "..." or "…".
- rep_dup_{line,para}_frac: repeats of an earlier line/paragraph per line/paragraph;
  rep_dup_{line,para}_char_frac: their characters per character of the text. n-gram fractions are
  defined in `text_stats.ngram_repetition` (per character of the words).
- C4: a line lacks terminal punctuation unless, after removing Wikipedia-style citation marks, it
  ends in . ? ! " or ' but not "..."; a short line has fewer than `min_words_per_line` words; the
  javascript and policy counts are lines containing "javascript" or one of `POLICY_SUBSTRINGS`
  (case-insensitive). A line C4 keeps ends in terminal punctuation, has enough words, no word over
  `max_word_chars` and neither javascript nor policy text; its sentences are the runs of . ! ? …
  followed by whitespace or the line's end (at least one per line), which miscounts abbreviations
  where C4's NLTK Punkt would not. Lorem ipsum and curly braces are looked for in the whole text.
- fineweb_line_punct_ratio: lines ending (right-stripped) in . ' " ! ?; fineweb_short_line_ratio:
  lines of at most `short_line_chars` characters (right-stripped); fineweb_char_dup_ratio:
  characters of repeated non-blank lines per non-newline character; fineweb_list_ratio: newlines
  per word.

Every ratio whose denominator is zero (empty text, no words, no lines) is 0.0, so no column is
ever null: a recipe's `x <= t` keeps such documents, and its `gopher_word_count >= 50` drops them.
A null `text` is scored as "".

The columns are computed for the whole batch at once (`heuristics_batch`: polars string
expressions in Rust over the Arrow text; Arrow hashing and numpy sorting for the repetition
measures); that module says where each part runs and why. The first implementation, a Python loop
per document, is kept as the test reference (tests/scorers/heuristics_reference.py), and the batch
path reproduces it exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from thresher.scorers.base import ScorerBase
from thresher.scorers.heuristics_batch import BULLETS, POLICY_SUBSTRINGS, batch_columns

__all__ = ["BULLETS", "DUP_NS", "POLICY_SUBSTRINGS", "STOP_WORDS", "TOP_NS", "HeuristicsScorer"]

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)

_F64 = pa.float64()
_I32 = pa.int32()
_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("text_n_chars", pa.int64()),
    ("text_n_lines", _I32),
    ("gopher_word_count", _I32),
    ("gopher_mean_word_length", _F64),
    ("gopher_symbol_word_ratio", _F64),
    ("gopher_hash_word_ratio", _F64),
    ("gopher_ellipsis_word_ratio", _F64),
    ("gopher_bullet_lines_ratio", _F64),
    ("gopher_ellipsis_lines_ratio", _F64),
    ("gopher_alpha_words_ratio", _F64),
    ("gopher_stop_word_count", _I32),
    ("rep_dup_line_frac", _F64),
    ("rep_dup_line_char_frac", _F64),
    ("rep_dup_para_frac", _F64),
    ("rep_dup_para_char_frac", _F64),
    *((f"rep_top_{n}gram_char_frac", _F64) for n in TOP_NS),
    *((f"rep_dup_{n}gram_char_frac", _F64) for n in DUP_NS),
    ("c4_lines_no_terminal_punct_frac", _F64),
    ("c4_short_lines_frac", _F64),
    ("c4_has_lorem_ipsum", pa.bool_()),
    ("c4_has_curly_brace", pa.bool_()),
    ("c4_javascript_lines", _I32),
    ("c4_policy_lines", _I32),
    ("c4_sentence_count", _I32),
    ("fineweb_line_punct_ratio", _F64),
    ("fineweb_short_line_ratio", _F64),
    ("fineweb_char_dup_ratio", _F64),
    ("fineweb_list_ratio", _F64),
)
_SCHEMA = pa.schema(
    [pa.field("doc_id", pa.string(), nullable=False)]
    + [pa.field(name, dtype, nullable=False) for name, dtype in _COLUMNS]
)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per document, 0.0 where den is 0. Both are exact integers in float64 (below 2**53),
    so each quotient is the correctly rounded one Python's int / int gives."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


@dataclass(frozen=True)
class HeuristicsScorer(ScorerBase):
    """Per-document Gopher quality, Gopher repetition, C4 and FineWeb signals (see module doc)."""

    name: ClassVar[str] = "heuristics"
    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = tuple(name for name, _ in _COLUMNS)

    stop_words: tuple[str, ...] = STOP_WORDS
    min_words_per_line: int = 3
    max_word_chars: int = 1000
    short_line_chars: int = 30

    def __post_init__(self) -> None:
        # Recipes give lists (YAML): a tuple keeps the frozen scorer hashable; words are compared
        # lowercased, so the stop words must be too.
        object.__setattr__(self, "stop_words", tuple(w.lower() for w in self.stop_words))

    @property
    def output_schema(self) -> pa.Schema:
        return _SCHEMA

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        c = batch_columns(
            batch.column("text"),
            stop_words=self.stop_words,
            min_words_per_line=self.min_words_per_line,
            max_word_chars=self.max_word_chars,
            short_line_chars=self.short_line_chars,
            top_ns=TOP_NS,
            dup_ns=DUP_NS,
        )
        n_chars, n_words, n_lines, n_raw = c["n_chars"], c["n_words"], c["n_lines"], c["n_raw_lines"]
        values = (
            n_chars,
            n_raw,
            n_words,
            _ratio(c["word_chars"], n_words),
            _ratio(c["hashes"] + c["ellipses"], n_words),
            _ratio(c["hashes"], n_words),
            _ratio(c["ellipses"], n_words),
            _ratio(c["bullet_lines"], n_lines),
            _ratio(c["ellipsis_lines"], n_lines),
            _ratio(c["alpha_words"], n_words),
            c["stop_words"],
            _ratio(c["dup_lines"], n_lines),
            _ratio(c["dup_line_chars"], n_chars),
            _ratio(c["dup_paras"], c["n_paras"]),
            _ratio(c["dup_para_chars"], n_chars),
            *(c[f"top_{n}"] for n in TOP_NS),
            *(c[f"dup_{n}"] for n in DUP_NS),
            _ratio(c["c4_no_terminal"], n_lines),
            _ratio(c["c4_short"], n_lines),
            c["lorem"],
            c["curly"],
            c["c4_javascript"],
            c["c4_policy"],
            c["c4_sentences"],
            _ratio(c["fw_punct"], n_raw),
            _ratio(c["fw_short"], n_raw),
            _ratio(c["dup_line_chars"], n_chars - c["newlines"]),
            _ratio(c["newlines"], n_words),
        )
        arrays = [batch.column("doc_id")] + [
            pa.array(v, type=dtype) for v, (_, dtype) in zip(values, _COLUMNS, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)
