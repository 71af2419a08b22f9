"""The benchmark index: built from files through the ingest readers (JSONL fields, Parquet,
Alpaca), sorted and unique, the same whether it fits the buffer or spills to buckets, cached by
content (a second build reads nothing) and rebuilt when a file changes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.decontam.data import questions, write_jsonl
from thresher.decontam import index as index_module
from thresher.decontam.config import BenchmarkSpec, parse_benchmarks
from thresher.decontam.index import benchmark_shards, build_index, ensure_index, index_stats, load_index
from thresher.decontam.ngrams import batch_ngrams


def _expected(texts: list[str], n: int) -> np.ndarray:
    return np.unique(batch_ngrams(texts, n).hashes)


@pytest.fixture
def items(sample_data):
    return questions(sample_data)


def test_fields_are_joined_lists_word_by_word(tmp_path, items):
    path = write_jsonl(tmp_path / "bench.jsonl", items)
    spec = BenchmarkSpec(name="alpaca", paths=[str(path)], fields=["question", "choices", "answer"])
    out = tmp_path / "ngrams.npy"
    stats = build_index(spec, 13, benchmark_shards(spec), out)
    texts = [f"{i['question']}\n{' '.join(i['choices'])}\n{i['answer']}" for i in items]
    array = load_index(out)
    assert isinstance(array, np.memmap) and array.dtype == np.uint64
    assert np.array_equal(array, _expected(texts, 13))
    assert stats["rows"] == 50 and stats["quarantined_rows"] == 0 and stats["ngrams"] == array.size
    # Only the question: fewer n-grams, all of them in the full index.
    only = BenchmarkSpec(name="q", paths=[str(path)], fields=["question"])
    build_index(only, 13, benchmark_shards(only), tmp_path / "q.npy")
    questions_only = load_index(tmp_path / "q.npy")
    assert np.array_equal(questions_only, _expected([i["question"] for i in items], 13))
    assert 0 < questions_only.size < array.size and np.isin(questions_only, array).all()


def test_parquet_and_alpaca_benchmarks(tmp_path, items, sample_data):
    table = pa.table({"question": [i["question"] for i in items], "answer": [i["answer"] for i in items]})
    pq.write_table(table, tmp_path / "bench.parquet")
    spec = BenchmarkSpec(paths=[str(tmp_path / "bench.parquet")], fields=["question", "answer"])
    assert spec.label == "bench"
    build_index(spec, 13, benchmark_shards(spec), tmp_path / "p.npy")
    joined = [f"{i['question']}\n{i['answer']}" for i in items]
    assert np.array_equal(load_index(tmp_path / "p.npy"), _expected(joined, 13))

    pairs = json.loads((sample_data / "alpaca_sample.json").read_text(encoding="utf-8"))[:40]
    (tmp_path / "alpaca.json").write_text(json.dumps(pairs), encoding="utf-8")
    alpaca = BenchmarkSpec(paths=[str(tmp_path / "alpaca.json")], fields=["instruction", "input"])
    build_index(alpaca, 8, benchmark_shards(alpaca), tmp_path / "a.npy")
    expected = _expected([f"{p['instruction']}\n{p['input']}" if p["input"] else p["instruction"] for p in pairs], 8)
    assert expected.size > 100 and np.array_equal(load_index(tmp_path / "a.npy"), expected)


def test_spilling_to_buckets_gives_the_same_index(tmp_path, sample_data):
    from tests.decontam.data import c4_pages

    pages = c4_pages(sample_data)
    path = write_jsonl(tmp_path / "pages.jsonl", [{"text": page} for page in pages] * 2)
    spec = BenchmarkSpec(paths=[str(path)])
    shards = benchmark_shards(spec)
    in_memory = build_index(spec, 13, shards, tmp_path / "memory.npy")
    spilled = build_index(spec, 13, shards, tmp_path / "spilled.npy", buffer_ngrams=5_000)
    assert not in_memory["spilled"] and spilled["spilled"]
    a, b = load_index(tmp_path / "memory.npy"), load_index(tmp_path / "spilled.npy")
    assert a.size > 50_000 and np.array_equal(a, b)
    assert np.all(np.diff(a.astype(np.uint64)) > 0)  # strictly increasing: sorted and unique
    assert np.array_equal(a, _expected(pages, 13))
    assert in_memory["ngrams_seen"] == 2 * batch_ngrams(pages, 13).hashes.size  # every page twice, kept once
    assert not list(tmp_path.glob(".build-*"))  # scratch buckets removed


def test_cache_is_reused_without_reading_and_rebuilt_when_a_file_changes(tmp_path, items, monkeypatch):
    path = write_jsonl(tmp_path / "bench.jsonl", items)
    (spec,) = parse_benchmarks([{"paths": [str(path)], "fields": ["question"]}])
    cache = tmp_path / "cache"
    first, built = ensure_index(spec, 13, cache)
    assert built and index_stats(first)["rows"] == 50

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached index must not read the benchmark")

    with monkeypatch.context() as patch:
        patch.setattr(index_module, "read_shard", no_reading)
        again, built_again = ensure_index(spec, 13, cache)
    assert again == first and not built_again

    other_n, built_n = ensure_index(spec, 8, cache)
    assert built_n and other_n != first

    write_jsonl(path, items[:49] + [{**items[49], "question": items[49]["question"] + " (revised)"}])
    changed, rebuilt = ensure_index(spec, 13, cache)
    assert rebuilt and changed != first
    assert index_stats(changed)["rows"] == 50
    assert not np.array_equal(load_index(changed), load_index(first))


def test_benchmark_names_must_be_unique_and_files_exist(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        parse_benchmarks([str(tmp_path / "a" / "mmlu.jsonl"), str(tmp_path / "b" / "mmlu.jsonl")])
    (spec,) = parse_benchmarks([str(tmp_path / "missing.jsonl")])
    with pytest.raises(Exception, match="missing.jsonl"):
        ensure_index(spec, 13, tmp_path / "cache")
