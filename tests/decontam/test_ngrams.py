"""Normalisation and n-gram hashing: lm-evaluation-harness-style words, a hash that is the same in
every process, n-grams that never span two texts, and no collisions on real text."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np

from tests.decontam.data import c4_pages
from thresher.decontam.ngrams import batch_ngrams, normalized_words, text_ngram_hashes


def _reference_hash(words: list[str]) -> int:
    """The documented definition in plain Python: blake2b-64 per word, Horner's rule mod 2**64."""
    multiplier = 0x9E3779B97F4A7C15 | 1
    value = 0
    for word in words:
        word_hash = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        value = (value * multiplier + word_hash) % (1 << 64)
    return value


def test_normalisation_lowercases_deletes_punctuation_and_splits_on_whitespace():
    assert normalized_words("  The QUICK, brown fox's\tjump-rope!\n(e.g. “quoted”) _x_ 3.5%") == [
        "the", "quick", "brown", "foxs", "jumprope", "eg", "quoted", "x", "35"]
    assert normalized_words("Éléphant ÇA") == ["éléphant", "ça"]
    assert normalized_words("?!... --") == []


def test_hashes_match_the_documented_definition():
    text = "Give an example of a job that a computer can do better than a human being."
    words = normalized_words(text)
    expected = [_reference_hash(words[j: j + 13]) for j in range(len(words) - 12)]
    assert text_ngram_hashes(text, 13).tolist() == expected
    assert text_ngram_hashes(text, 1).tolist() == [_reference_hash([w]) for w in words]


def test_hashes_are_the_same_in_another_process():
    text = "Give an example of a job that a computer can do better than a human being."
    here = text_ngram_hashes(text, 5).tolist()
    code = ("from thresher.decontam.ngrams import text_ngram_hashes as h; "
            f"print(h({text!r}, 5).tolist())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout
    assert there.strip() == str(here)


def test_ngrams_never_span_two_texts_and_short_texts_have_none():
    texts = ["one two three", None, "four five six seven", "", "eight"]
    grams = batch_ngrams(texts, 3)
    assert grams.word_counts.tolist() == [3, 0, 4, 0, 1]
    assert grams.text_of.tolist() == [0, 2, 2]
    assert grams.start.tolist() == [0, 3, 4]
    assert grams.hashes.tolist() == [_reference_hash(["one", "two", "three"]),
                                     _reference_hash(["four", "five", "six"]),
                                     _reference_hash(["five", "six", "seven"])]
    # The batch gives each text exactly the hashes it gives alone.
    for index, text in enumerate(texts):
        alone = text_ngram_hashes(text or "", 3)
        assert grams.hashes[grams.text_of == index].tolist() == alone.tolist()


def test_no_collisions_between_distinct_ngrams_of_real_text(sample_data):
    pages = c4_pages(sample_data)
    grams = batch_ngrams(pages, 13)
    words = [w for page in pages for w in normalized_words(page)]
    distinct = {tuple(words[s: s + 13]) for s in grams.start.tolist()}
    assert len(distinct) > 50_000
    assert np.unique(grams.hashes).size == len(distinct)
