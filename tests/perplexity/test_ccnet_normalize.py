from __future__ import annotations

import json
import zipfile

import pytest

from thresher.perplexity.ccnet_normalize import (
    UNICODE_PUNCT,
    normalize_document,
    normalize_line,
    normalize_lines,
    reference_normalize_line,
)


@pytest.mark.parametrize(
    ("raw", "expected", "rule"),
    [
        ("  Hello World \t", "hello world", "strip, then lower-case"),
        ("\u00a0\u3000 x \u2028", "x", "strip takes Unicode whitespace"),
        ("   \t ", "", "a blank line stays empty"),
        ("İstanbul ΟΔΟΣ", "istanbul οδος", "full Unicode lower-casing, final sigma, accent of İ dropped"),
        ("Café naïve Ångström", "cafe naive angstrom", "NFD then drop Mn marks"),
        ("ﬁ ß æ ø", "ﬁ ß æ ø", "NFD leaves compatibility characters and letters without marks alone"),
        ("In 1984, 3.14 ٣ ３ ၅", "in 0000, 0.00 0 0 0", "every Nd digit of any script becomes 0"),
        ("１", "0", "CCNet's table maps １ to a quote, but the digit rule comes first"),
        ("“Quote” „x“ «y» —dash– …", '"quote" "x" "y"  - dash- ...', "Unicode punctuation table"),
        ("‘single’ ´", "‘single' '", "only ’ and ´ are mapped, ‘ is not"),
        ("a\x00b\x1fc\x7fd\x85e\x9ff\tg\rh", "abcdefgh", "C0, DEL and C1 controls removed, tabs too"),
        ("x\u00a0y", "x\u00a0y", "no-break space is not a control and stays"),
        ("\x01 \xa0foo", " \xa0foo", "strip happens before controls are removed (as in CCNet)"),
        ("（注意）：１０％！", "(注意):00%!", "fullwidth punctuation"),
    ],
)
def test_rules(raw, expected, rule):
    assert reference_normalize_line(raw) == expected, rule
    assert normalize_line(raw) == expected, rule


def test_punctuation_table_is_ccnets():
    assert len(UNICODE_PUNCT) == 34
    assert UNICODE_PUNCT["—"] == " - " and UNICODE_PUNCT["．"] == ". " and UNICODE_PUNCT["…"] == "..."
    assert all(len(key) == 1 for key in UNICODE_PUNCT)


def test_lines_are_normalised_one_by_one():
    text = "First LINE 12\r\n\n  Ünïcode — “q” \x85\n\tΣΟΦΟΣ\nlast"
    expected = [reference_normalize_line(line) for line in text.split("\n")]
    assert normalize_lines(text) == expected
    assert normalize_document(text) == "\n".join(expected)
    assert expected[1] == "" and expected[3] == "σοφος"
    # one line: a newline inside is a control character and goes, as in CCNet's normalize()
    assert normalize_line("a\nb") == reference_normalize_line("a\nb") == "ab"


EDGE_CASES = [
    "ΟΔΟΣ ΟΔΟΣ\nΣ",  # final sigma at line ends
    "a\u0301\n\u0327b",  # combining marks on both sides of a newline (NFD reordering must not cross)
    "e\u0327\u0301 \u1e09",  # canonical reordering of marks within a line
    "x\ud800y\nz",  # a lone surrogate passes through untouched
    "\u2329angle\u232a",  # canonically decompose to 〈〉, which the table then maps
    "𝟘𝟙 \U000e0101 \u0300",  # mathematical digits, a variation selector (Mn beyond the BMP)
    "\n\n\n",
    "",
    "ÀÉÎÕÜ\r\n\r\n" * 3,
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_fast_path_equals_literal_rules_on_edge_cases(text):
    assert normalize_lines(text) == [reference_normalize_line(line) for line in text.split("\n")]
    assert normalize_line(text) == reference_normalize_line(text)


def _real_texts(sample_data):
    c4 = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").open(encoding="utf-8")]
    wiki = (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8").split("\n")
    with zipfile.ZipFile(sample_data / "udhr2.zip") as archive:
        udhr = [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()
                if not name.endswith("/")]
    return c4, wiki, udhr


def test_fast_path_equals_literal_rules_on_real_text_in_388_languages(sample_data):
    c4, wiki, udhr = _real_texts(sample_data)
    assert len(udhr) >= 380
    mismatches = [
        text[:60] for text in (*c4, *wiki, *udhr)
        if normalize_lines(text) != [reference_normalize_line(line) for line in text.split("\n")]
    ]
    assert mismatches == []


# The fast path's speed against the literal rules (~10-15x) is a benchmark, not a test:
# bench/kenlm_overhead.py, part 2, prints the ratio on a larger corpus.
