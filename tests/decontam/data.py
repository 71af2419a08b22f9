"""Benchmark-like data for the decontamination tests, all from tests/data: Alpaca instructions as
the benchmark's "questions", C4 pages and Wikipedia paragraphs as the clean corpus."""

from __future__ import annotations

import json
from pathlib import Path

from thresher.decontam.ngrams import normalized_words


def questions(sample_data: Path, count: int = 50, min_words: int = 16) -> list[dict]:
    """`count` Alpaca pairs whose instruction has at least `min_words` words (so a 13-gram fits in it),
    as benchmark items {question, choices, answer}."""
    pairs = json.loads((sample_data / "alpaca_sample.json").read_text(encoding="utf-8"))
    long = [p for p in pairs if len(normalized_words(p["instruction"])) >= min_words]
    assert len(long) >= count, f"only {len(long)} long instructions"
    return [{"question": p["instruction"], "choices": ["yes", "no", p["input"][:40]], "answer": p["output"]}
            for p in long[:count]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def c4_pages(sample_data: Path) -> list[str]:
    return [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").open(encoding="utf-8")]


def wikipedia_paragraphs(sample_data: Path) -> list[str]:
    lines = (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]
