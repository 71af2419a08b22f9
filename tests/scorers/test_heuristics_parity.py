"""The batch heuristics (polars + Arrow) against the first, per-document Python implementation.

Every column must be identical on real texts: integers and booleans equal, floats equal to within
1e-12 relative (in practice they are bit-identical: both sides divide the same integers).
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from tests.scorers.heuristics_reference import reference_row
from thresher.scorers import heuristics_batch
from thresher.scorers import heuristics_ngrams as ngrams
from thresher.scorers.heuristics import DUP_NS, TOP_NS, HeuristicsScorer
from thresher.scorers.text_stats import (
    count_letter_words,
    duplicates,
    ngram_repetition,
    python_whitespace,
    rust_letter_class,
    rust_word_pattern,
    words,
)


def _score(texts: list[str | None], scorer: HeuristicsScorer) -> list[tuple]:
    batch = pa.record_batch(
        {"doc_id": pa.array([str(i) for i in range(len(texts))]), "text": pa.array(texts, pa.large_string())}
    )
    table = scorer.score(batch).to_pydict()
    names = list(table)[1:]
    return [tuple(table[name][i] for name in names) for i in range(len(texts))], names


def assert_parity(texts: list[str | None], scorer: HeuristicsScorer | None = None) -> None:
    scorer = scorer or HeuristicsScorer()
    got, names = _score(texts, scorer)
    params = dict(
        stop_words=scorer.stop_words,
        min_words_per_line=scorer.min_words_per_line,
        max_word_chars=scorer.max_word_chars,
        short_line_chars=scorer.short_line_chars,
    )
    mismatches = []
    for i, text in enumerate(texts):
        want = reference_row(text or "", **params)
        for name, g, w in zip(names, got[i], want, strict=True):
            same = math.isclose(g, w, rel_tol=1e-12, abs_tol=0.0) if isinstance(w, float) else g == w
            if not same or type(g) is not type(w):
                mismatches.append((i, name, g, w, (text or "")[:80]))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def _real_texts(sample_data) -> dict[str, list[str]]:
    with open(sample_data / "c4_sample.jsonl", encoding="utf-8") as handle:
        c4 = [json.loads(line)["text"] for line in handle]
    wiki = (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8")
    with open(sample_data / "alpaca_sample.json", encoding="utf-8") as handle:
        alpaca = [record["output"] for record in json.load(handle)]
    return {
        "c4": c4,
        # the Wikipedia sample is one article after another: cut it into page-sized pieces, blank
        # lines (paragraphs), headings and all
        "wikipedia": [wiki[i : i + 3000] for i in range(0, len(wiki), 3000)],
        "alpaca answers": alpaca,
    }


@pytest.mark.parametrize("source", ["c4", "wikipedia", "alpaca answers"])
def test_parity_on_real_texts(sample_data, source):
    texts = _real_texts(sample_data)[source]
    assert len(texts) >= 200
    assert_parity(texts)


EDGE_CASES = [
    "",
    None,
    "\n",
    "\n\n\n",
    "   ",
    " \n \n",
    "\r\n",
    "a\r\nb\r\n\r\nc\r\n",  # CRLF: "\r" is whitespace, stripped from lines; "\r\n\r\n" is a blank line
    "word " * 3 + "x" * 1001 + " in a line that C4 would keep.",  # an overlong word
    "y" * 5000,  # one very long word, no line end
    "😀😀 🇫🇷",  # symbols only: no words
    "İstanbul THE The tHe ΣΑΣ σας straße STRASSE",  # case mappings
    "1,000abc a.1,000 12,3x 1a,2 1,2,3.4a:5 ½ x²,3 ٣,٤ 10:30 24/7 a,b",  # the joiners' rule
    "हिन्दी भाषा العَرَبِيَّة e\u0301te\u0301 𝒳𝒴 a\U0001d165b",  # marks, astral letters and marks
    "\x1c\x1dtext\x1e\x1f\nx",  # whitespace to Python's strip (not to Rust's)
    "a\n\xa0\nb\n\n\xa0\na\n \t\n\na",  # lines of Unicode whitespace: blank lines, not paragraph breaks
    "x\u2028y\u2029z\x85w\x0bv\x0cu",  # line-like separators that are not "\n"
    "Hello...\n• bullet\n- dash\n* star\n‣ tri…\n●",
    "See [1] the fact.[citation needed]\nA thing here is said.[edit]\nAnd [12] a claim it is.[3]",
    "Please enable JavaScript now.\nThis site uses cookies, see.\nLOREM IPSUM dolor it is.",
    "This ſite uſes cookies, you ſee.\nthe coo\u212aie policy applies.",  # ſ and the Kelvin sign
    "{curly}",
    "# one ## two ... three … four",
    "Same line.\nSame line.\n  Same line.  \n\nSame line.\n\n\nSame line.",
    "la " * 300,
    "a\x00b\n\nc\n\na\x00b",  # a NUL: the paragraph split falls back to Python for this one
]


def test_parity_on_edge_cases():
    assert_parity(EDGE_CASES)
    for text in EDGE_CASES:  # alone in its batch, too: nothing may depend on the neighbours
        assert_parity([text])


def test_parity_with_other_parameters(sample_data):
    texts = _real_texts(sample_data)["c4"][:60] + [t for t in EDGE_CASES if t]
    scorer = HeuristicsScorer(
        stop_words=("A", "Of", "über", "ſ"), min_words_per_line=5, max_word_chars=12, short_line_chars=80
    )
    assert_parity(texts, scorer)


def test_parity_on_synthetic_repetition():
    """Pages built to repeat: every n-gram column takes values well away from 0 and ties abound."""
    rng = random.Random(3)
    vocab = ["la", "le", "lalala", "x", "Über", "don't", "3.14", "e-mail"]
    texts = []
    for _ in range(150):
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 200))]
        if len(tokens) > 20:
            start = rng.randrange(len(tokens) - 15)
            at = rng.randrange(len(tokens))
            tokens[at:at] = tokens[start : start + rng.randint(5, 15)] * rng.randint(1, 3)
        lines, i = [], 0
        while i < len(tokens):
            step = rng.randint(1, 12)
            lines.append(" ".join(tokens[i : i + step]) + rng.choice(["", ".", "...", "!"]))
            i += step
        texts.append(rng.choice(["\n", "\n\n"]).join(lines))
    got, names = _score(texts, HeuristicsScorer())
    nonzero = {name: sum(row[names.index(name)] > 0 for row in got) for name in names}
    # the test has teeth: most pages repeat n-grams, and some repeat lines and paragraphs
    assert nonzero["rep_top_2gram_char_frac"] > 120 and nonzero["rep_dup_10gram_char_frac"] > 80
    assert nonzero["rep_dup_line_frac"] > 5 and nonzero["rep_dup_para_frac"] > 3
    assert_parity(texts)


# --- the batch kernels against the per-document functions ------------------------------------


def _fuzz_texts(seed: int, n: int) -> list[str]:
    """Random strings over the characters the word rule treats specially, in every script class."""
    rng = random.Random(seed)
    alphabet = (
        "ab Z_09٣½²-'’.,:/ \n\t\xa0"  # letters, digits (ASCII and Arabic-Indic), numerics, joiners, spaces
        "\u0301\u093f\U0001d165"  # combining marks (BMP and astral)
        "é中😀\u200d\u2028\x1c‿"  # letters, an emoji, a joiner, separators, connector punctuation
    )
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(n)]


def test_rust_word_pattern_splits_as_python_re():
    texts = _fuzz_texts(0, 3000) + ["Don't e-mail the U.S. office: 3.14, 1,000 and 10:30 or 24/7 a,b"]
    got = pl.Series(texts).str.extract_all(rust_word_pattern()).to_list()
    assert got == [words(text) for text in texts]


def test_python_classes_for_rust():
    assert set(python_whitespace()) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert "\x1c" in python_whitespace() and "\u200b" not in python_whitespace()
    letters = pl.Series(["abc", "12", "__", "½", "é", "e\u0301", "\u0301", "3.14", "٣", "x2"])
    assert letters.str.contains(rust_letter_class()).to_list() == [
        count_letter_words([w]) == 1 for w in letters.to_list()
    ]


@pytest.mark.parametrize("key_bits", [8, 62])  # packed sort, and the argsort it falls back to
def test_group_matches_a_dict(key_bits):
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 50, 2000).astype(np.int64)
    groups = ngrams.group(keys, key_bits)
    first_seen: dict[int, int] = {}
    for i, key in enumerate(keys.tolist()):
        first_seen.setdefault(key, i)
    assert len(groups.counts) == len(first_seen)
    assert np.array_equal(groups.first[groups.ids], [first_seen[k] for k in keys.tolist()])
    assert np.array_equal(groups.counts[groups.ids], [int((keys == k).sum()) for k in keys])
    assert groups.is_first().sum() == len(first_seen)
    assert len(ngrams.group(np.zeros(0, np.int64), 1).ids) == 0


def test_encode_numbers_strings_in_order_of_first_occurrence():
    ids, is_first = ngrams.encode(pa.array(["b", "a", "b", "c", "a"]))
    assert ids.tolist() == [0, 1, 0, 2, 1] and is_first.tolist() == [True, True, False, True, False]


def test_batch_ngram_repetition_matches_per_document():
    rng = random.Random(5)
    docs = []
    for i in range(120):
        vocab = [rng.choice("abcdefgh") * rng.randint(1, 4) for _ in range(rng.randint(1, 12))]
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 120) if i % 7 else rng.randint(0, 2))]
        if len(tokens) > 20:
            start = rng.randrange(len(tokens) - 15)
            at = rng.randrange(len(tokens))
            tokens[at:at] = tokens[start : start + rng.randint(5, 15)] * rng.randint(1, 3)
        docs.append(tokens)
    flat = [w for doc in docs for w in doc]
    doc_index = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    word_ids, _ = ngrams.encode(pa.array(flat, pa.string()))
    lengths = np.array([len(w) for w in flat], np.int64)
    top, dup = ngrams.ngram_repetition(word_ids, doc_index, lengths, len(docs), TOP_NS, DUP_NS)
    for i, tokens in enumerate(docs):
        want_top, want_dup = ngram_repetition(tokens, TOP_NS, DUP_NS)
        assert [top[n][i] for n in TOP_NS] == want_top, i
        assert [dup[n][i] for n in DUP_NS] == want_dup, i
    assert sum(top[2] > 0) > 60  # most documents repeat something


def test_batch_duplicates_match_per_document():
    docs = [["a", "bb", "a", "bb", "a", "c"], [], ["a"], ["a", "a"], ["x", "y", "x"]]
    flat = [item for doc in docs for item in doc]
    doc_index = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    n_dup, dup_chars = ngrams.duplicates(
        pa.array(flat), doc_index, np.array([len(x) for x in flat]), len(docs)
    )
    assert list(zip(n_dup.tolist(), dup_chars.tolist())) == [duplicates(doc) for doc in docs]


def test_batches_over_max_rows_are_scored_in_pieces_alike(sample_data, monkeypatch):
    texts = _real_texts(sample_data)["c4"][:40] + EDGE_CASES
    whole, _ = _score(texts, HeuristicsScorer())
    monkeypatch.setattr(heuristics_batch, "MAX_ROWS", 7)
    pieces, _ = _score(texts, HeuristicsScorer())
    assert pieces == whole
