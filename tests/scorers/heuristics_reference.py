"""The heuristics scorer as it was written first: one document at a time, in Python loops.

Kept as the reference the batch implementation (`thresher.scorers.heuristics_batch`) must reproduce
exactly (tests/scorers/test_heuristics_parity.py); nothing in thresher or bench imports it. It is
the scorer's `score_text` of heuristics@1 before the batch rewrite, unchanged but for taking the
scorer's parameters as arguments.
"""

from __future__ import annotations

import re

from thresher.scorers.heuristics import BULLETS, DUP_NS, POLICY_SUBSTRINGS, STOP_WORDS, TOP_NS
from thresher.scorers.text_stats import WORD_RE, count_letter_words, duplicates, ngram_repetition

_C4_END = (".", "?", "!", '"', "'")
_FINEWEB_END = (".", "'", '"', "!", "?")
_ELLIPSES = ("...", "…")
_CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_SENTENCE_END_RE = re.compile(r"[.!?…]['\"”’)\]]*(?:\s|$)")
_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def reference_row(
    text: str,
    stop_words: tuple[str, ...] = STOP_WORDS,
    min_words_per_line: int = 3,
    max_word_chars: int = 1000,
    short_line_chars: int = 30,
) -> tuple:
    """One document's values, in the order of `output_schema` after doc_id."""
    n_chars = len(text)
    newlines = text.count("\n")
    lower = text.lower()
    has_javascript = "javascript" in lower
    has_policy = any(p in lower for p in POLICY_SUBSTRINGS)
    stop_words = frozenset(w.lower() for w in stop_words)
    min_words = min_words_per_line
    max_word_chars = max_word_chars
    short_chars = short_line_chars

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
