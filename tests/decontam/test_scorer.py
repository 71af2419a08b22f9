"""decontam@1 on benchmark-like data: 50 Alpaca instructions as the benchmark's questions. A copied
question is caught verbatim and with its case and punctuation changed; 12 of its words in a row are
not (n = 13); real C4 pages and Wikipedia paragraphs are clean; coverage is the share of words
inside matches; the best benchmark is the one with most matches; the numbers equal a plain Python
set-of-tuples reference."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from tests.decontam.data import c4_pages, questions, wikipedia_paragraphs, write_jsonl
from thresher.decontam.ngrams import normalized_words
from thresher.decontam.scorer import DecontaminationScorer
from thresher.scorers.base import check_output
from thresher.scorers.registry import build_scorer

FILLER_BEFORE = "Welcome to our weekly newsletter where we share stories from around the town."
FILLER_AFTER = "Thanks for reading and see you again next week at the market square."


@pytest.fixture(scope="module")
def bench(sample_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("decontam")
    items = questions(sample_data)
    path = write_jsonl(root / "alpaca_questions.jsonl", items)
    scorer = build_scorer("decontam", {"benchmarks": [{"paths": [str(path)], "fields": ["question"]}],
                                       "cache_dir": str(root / "cache")})
    scorer.prepare()
    return scorer, items, root


def _score(scorer, texts: list[str]) -> list[dict]:
    batch = pa.RecordBatch.from_arrays([pa.array([f"d{i}" for i in range(len(texts))]),
                                        pa.array(texts, pa.large_string())], names=["doc_id", "text"])
    return check_output(scorer, batch, scorer.score(batch)).to_pylist()


def _shout(question: str) -> str:
    """The question with its case and punctuation changed: what a scraped copy looks like."""
    return "“" + question.upper().replace(" ", ", ", 3).rstrip(".?") + "!!”"


def test_copied_questions_are_caught_verbatim_and_with_case_and_punctuation_changed(bench):
    scorer, items, _ = bench
    verbatim = [f"{FILLER_BEFORE} {item['question']} {FILLER_AFTER}" for item in items]
    shouted = [f"{FILLER_BEFORE} {_shout(item['question'])} {FILLER_AFTER}" for item in items]
    for row, item in zip(_score(scorer, verbatim) + _score(scorer, shouted), items + items):
        words = len(normalized_words(item["question"]))
        assert row["decontam_overlap"] == words - 12
        assert row["decontam_benchmark"] == "alpaca_questions"


def test_twelve_words_in_a_row_are_not_caught_at_n_13(bench):
    scorer, items, _ = bench
    texts = [f"{FILLER_BEFORE} {' '.join(item['question'].split()[:12])} {FILLER_AFTER}" for item in items]
    texts += [f"{FILLER_BEFORE} {' '.join(item['question'].split()[1:13])} {FILLER_AFTER}" for item in items]
    rows = _score(scorer, texts)
    assert all(r["decontam_overlap"] == 0 and r["decontam_benchmark"] is None for r in rows)
    # Thirteen words in a row are one match.
    thirteen = _score(scorer, [f"{FILLER_BEFORE} {' '.join(items[0]['question'].split()[:13])} {FILLER_AFTER}"])
    assert thirteen[0]["decontam_overlap"] == 1


def test_no_false_positives_on_real_web_and_wikipedia_text(bench, sample_data):
    scorer, _, _ = bench
    texts = c4_pages(sample_data) + wikipedia_paragraphs(sample_data)
    rows = _score(scorer, texts)
    assert len(rows) == 230
    assert sum(r["decontam_overlap"] for r in rows) == 0
    assert all(r["decontam_coverage"] == 0.0 and r["decontam_benchmark"] is None for r in rows)


def test_coverage_is_the_share_of_words_inside_matches(bench):
    scorer, items, _ = bench
    question = items[0]["question"]  # 16 words
    words = len(normalized_words(question))
    before, after = len(normalized_words(FILLER_BEFORE)), len(normalized_words(FILLER_AFTER))
    thirteen = " ".join(question.split()[:13])
    rows = _score(scorer, [question, f"{FILLER_BEFORE} {question} {FILLER_AFTER}",
                           f"{FILLER_BEFORE} {thirteen} {FILLER_AFTER} {thirteen}", "", "too short"])
    assert rows[0]["decontam_coverage"] == 1.0 and rows[0]["decontam_overlap"] == words - 12
    assert rows[1]["decontam_coverage"] == pytest.approx(words / (before + words + after))
    assert rows[2]["decontam_overlap"] == 2  # each position counts
    assert rows[2]["decontam_coverage"] == pytest.approx(26 / (before + 13 + after + 13))
    assert rows[3] == {"doc_id": "d3", "decontam_overlap": 0, "decontam_coverage": 0.0, "decontam_benchmark": None}
    assert rows[4]["decontam_overlap"] == 0


def test_the_benchmark_with_most_matches_is_named(bench, sample_data):
    _, items, root = bench
    first = write_jsonl(root / "first.jsonl", items[:25])
    second = write_jsonl(root / "second.jsonl", items[20:])
    scorer = DecontaminationScorer(
        benchmarks=[{"name": "early", "paths": [str(first)], "fields": ["question"]},
                    {"name": "late", "paths": [str(second)], "fields": ["question", "answer"]}],
        cache_dir=str(root / "cache"))
    rows = _score(scorer, [items[0]["question"], items[30]["question"] + " " + items[30]["answer"],
                           items[22]["question"], items[22]["question"] + " " + items[22]["answer"]])
    assert [r["decontam_benchmark"] for r in rows] == ["early", "late", "early", "late"]  # a tie: the first listed
    assert rows[3]["decontam_overlap"] > rows[2]["decontam_overlap"] > 0


def test_counts_equal_a_plain_python_set_of_tuples(bench, sample_data):
    scorer, items, _ = bench
    reference = {tuple(normalized_words(item["question"])[j: j + 13])
                 for item in items for j in range(len(normalized_words(item["question"])) - 12)}
    pages = c4_pages(sample_data)[:60]
    texts = [page[: 200 * (i % 5)] + " " + items[i % 50]["question"] + " " + page[-300:] if i % 3 == 0 else page
             for i, page in enumerate(pages)]
    rows = _score(scorer, texts)
    for text, row in zip(texts, rows):
        words = normalized_words(text)
        hits = [j for j in range(len(words) - 12) if tuple(words[j: j + 13]) in reference]
        covered = {j + k for j in hits for k in range(13)}
        assert row["decontam_overlap"] == len(hits)
        assert row["decontam_coverage"] == pytest.approx(len(covered) / len(words) if words else 0.0, rel=1e-6)
    assert sum(r["decontam_overlap"] > 0 for r in rows) == 20


def test_a_changed_benchmark_changes_the_parameters_hash(bench):
    from thresher.scorers.base import scorer_params_hash

    scorer, items, root = bench
    path = write_jsonl(root / "mutable.jsonl", items[:10])
    params = {"benchmarks": [str(path)], "cache_dir": str(root / "cache")}
    before = build_scorer("decontam", params)
    write_jsonl(path, items[:11])
    after = build_scorer("decontam", params)
    assert scorer_params_hash(before) != scorer_params_hash(after)
    assert pickle.loads(pickle.dumps(after)) == after
