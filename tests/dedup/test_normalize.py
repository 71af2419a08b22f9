"""The vectorised tokenizer against its plain-Python specification, on real multilingual text."""

from __future__ import annotations

import zipfile

import pyarrow as pa
import pytest

from tests.dedup.planted import c4_texts
from thresher.dedup.exact import exact_hashes
from thresher.dedup.minhash import shingle_batch
from thresher.dedup.normalize import reference_normalized_text, reference_tokens, tokenize_batch

TRICKY = [
    "",
    "   \t\n ",
    "!!! ... ???",
    "a",
    "A b",
    "ÉCOLE déjà vu — “quoted” … ‘single’",
    "ﬁnance ＡＢＣ１２３ x² ½ Ⅻ ①",            # NFKC folds ligatures, fullwidth, superscripts
    "emoji 😀 test ❤️ ok 👍🏽 end",               # emoji and variation selectors separate words
    "İstanbul STRASSE straße ΣΊΣΥΦΟΣ",
    "tab\tsep\u00a0nbsp\u2009thin\u3000ideographic",
    "日本語のテキスト、句読点。「括弧」",
    "Price: $1,299.99 on 2019-04-25 at 10:30",
    "\ufeffbom at start",
    "zero\u200bwidth\u200cjoiner",
    "combining e\u0301 and precomposed é",
    "arrows → ⇒ and box ─│ and bullets • ● ■",
    "abc",
    "def",
]


def udhr_samples(sample_data, limit: int = 60) -> list[str]:
    with zipfile.ZipFile(sample_data / "udhr2.zip") as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".txt"))[:: max(1, 389 // limit)]
        return [archive.read(n).decode("utf-8", errors="replace")[:4000] for n in names]


def test_vectorised_tokens_equal_the_reference_on_real_text(sample_data):
    texts = c4_texts(sample_data) + udhr_samples(sample_data) + TRICKY
    batch = tokenize_batch(texts)
    mismatches = [i for i, text in enumerate(texts) if batch.tokens(i) != reference_tokens(text)]
    assert not mismatches, [(texts[i][:80], batch.tokens(i)[:10], reference_tokens(texts[i])[:10])
                            for i in mismatches[:3]]
    assert sum(batch.tokens_per_doc) > 100_000


def test_tokens_never_run_across_documents():
    batch = tokenize_batch(["abc", "def", "", "x y", "z"])
    assert [batch.tokens(i) for i in range(5)] == [["abc"], ["def"], [], ["x", "y"], ["z"]]


def test_arrow_input_with_offset_and_nulls_is_handled():
    array = pa.array(["skip me", "Hello, World", None, "again"], type=pa.string()).slice(1)
    batch = tokenize_batch(array)
    assert [batch.tokens(i) for i in range(3)] == [["hello", "world"], [], ["again"]]


@pytest.mark.parametrize(("a", "b"), [
    ("The Quick brown fox!", "the quick, brown   fox"),
    ("Order 12345 shipped on 2020-01-02", "order 99999 shipped on 1999/12/31"),
    ("“Smart quotes” — and dashes…", "\"smart quotes\" - and dashes..."),
    ("ＦＵＬＬＷＩＤＴＨ text", "fullwidth TEXT"),
])
def test_normalisation_folds_case_punctuation_digits_and_width(a, b):
    assert reference_normalized_text(a) == reference_normalized_text(b)
    assert tokenize_batch([a]).tokens(0) == tokenize_batch([b]).tokens(0)
    ha, hb = exact_hashes(shingle_batch([a, b], 5))
    assert ha == hb


def test_exact_hash_separates_different_texts(sample_data):
    texts = c4_texts(sample_data)
    hashes = exact_hashes(shingle_batch(texts, 5))
    distinct_texts = {reference_normalized_text(t) for t in texts}
    assert len(set(hashes)) == len(distinct_texts)
    assert all(len(h) == 32 for h in hashes)
    # a one-word change changes the hash; the empty text has a hash too
    assert len(set(exact_hashes(shingle_batch(["one two three", "one two four", "", "  "], 5)))) == 3
