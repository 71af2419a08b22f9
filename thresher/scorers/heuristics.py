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
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from thresher.scorers.base import ScorerBase
from thresher.scorers.text_stats import WORD_RE, count_letter_words, duplicates, ngram_repetition

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = ("•", "‣", "◦", "⁃", "▪", "●", "-", "*")
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)

_C4_END = (".", "?", "!", '"', "'")
_FINEWEB_END = (".", "'", '"', "!", "?")
_ELLIPSES = ("...", "…")
_CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_SENTENCE_END_RE = re.compile(r"[.!?…]['\"”’)\]]*(?:\s|$)")
_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")

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


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


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
        rows = [self.score_text(text or "") for text in batch.column("text").to_pylist()]
        columns = list(zip(*rows)) if rows else [[] for _ in _COLUMNS]
        arrays = [batch.column("doc_id")] + [
            pa.array(values, type=dtype) for values, (_, dtype) in zip(columns, _COLUMNS)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)

    def score_text(self, text: str) -> tuple:
        """One document's values, in the order of `output_schema` after doc_id."""
        n_chars = len(text)
        newlines = text.count("\n")
        lower = text.lower()
        has_javascript = "javascript" in lower
        has_policy = any(p in lower for p in POLICY_SUBSTRINGS)
        stop_words = frozenset(self.stop_words)
        min_words = self.min_words_per_line
        max_word_chars = self.max_word_chars
        short_chars = self.short_line_chars

        raw_lines = text.split("\n") if text else []
        lines: list[str] = []
        words: list[str] = []
        fw_punct = fw_short = 0
        bullets = ellipsis_lines = 0
        c4_no_term = c4_short = c4_js = c4_policy = c4_sentences = 0
        for raw in raw_lines:
            right = raw.rstrip()
            if right.endswith(_FINEWEB_END):
                fw_punct += 1
            if len(right) <= short_chars:
                fw_short += 1
            line = right.lstrip()
            if not line:
                continue
            lines.append(line)
            line_words = WORD_RE.findall(line)
            words += line_words
            if line.startswith(BULLETS):
                bullets += 1
            if line.endswith(_ELLIPSES):
                ellipsis_lines += 1

            cited = _CITATION_RE.sub("", line).rstrip() if "[" in line else line
            terminal = cited.endswith(_C4_END) and not cited.endswith("...")
            c4_no_term += not terminal
            short = len(line_words) < min_words
            c4_short += short
            line_lower = line.lower() if has_javascript or has_policy else ""
            js = has_javascript and "javascript" in line_lower
            policy = has_policy and any(p in line_lower for p in POLICY_SUBSTRINGS)
            c4_js += js
            c4_policy += policy
            if terminal and not short and not js and not policy:
                longest = max(map(len, line_words), default=0) if len(line) > max_word_chars else 0
                if longest <= max_word_chars:
                    c4_sentences += max(1, len(_SENTENCE_END_RE.findall(cited)))

        n_lines = len(lines)
        dup_lines, dup_line_chars = duplicates(lines)
        paragraphs = [p for p in map(str.strip, _PARAGRAPH_RE.split(text)) if p]
        dup_paras, dup_para_chars = duplicates(paragraphs)

        n_words = len(words)
        word_chars = sum(map(len, words))
        alpha_words = count_letter_words(words)
        n_stop = sum(map(stop_words.__contains__, map(str.lower, words)))
        hashes = text.count("#")
        ellipses = text.count("...") + text.count("…")
        top, dup = ngram_repetition(words, TOP_NS, DUP_NS)

        return (
            n_chars,
            len(raw_lines),
            n_words,
            _ratio(word_chars, n_words),
            _ratio(hashes + ellipses, n_words),
            _ratio(hashes, n_words),
            _ratio(ellipses, n_words),
            _ratio(bullets, n_lines),
            _ratio(ellipsis_lines, n_lines),
            _ratio(alpha_words, n_words),
            n_stop,
            _ratio(dup_lines, n_lines),
            _ratio(dup_line_chars, n_chars),
            _ratio(dup_paras, len(paragraphs)),
            _ratio(dup_para_chars, n_chars),
            *top,
            *dup,
            _ratio(c4_no_term, n_lines),
            _ratio(c4_short, n_lines),
            "lorem ipsum" in lower,
            "{" in text or "}" in text,
            c4_js,
            c4_policy,
            c4_sentences,
            _ratio(fw_punct, len(raw_lines)),
            _ratio(fw_short, len(raw_lines)),
            _ratio(dup_line_chars, n_chars - newlines),
            _ratio(newlines, n_words),
        )
