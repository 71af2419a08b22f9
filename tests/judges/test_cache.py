"""The judgment cache (SQLite store): round trip, first verdict wins, writers in several real
processes, a writer killed with SIGKILL mid-loop, import of the previous Parquet-parts layout, and
`compute_through_cache` computing each distinct key once and resuming after a failure."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pyarrow as pa
import pytest

from thresher.judges.cache import JudgmentCache, compute_through_cache, remove_dead_writes
from thresher.storage.parquet_io import write_table_atomic

JUDGE = "judge_x"
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no connection inherited


def entry(i: int, verdict: float | None = None) -> tuple[str, str, str, str, dict]:
    return f"key-{i:07d}", "model@1", "v1", f"hash-{i}", {"score": float(i % 5) if verdict is None else verdict,
                                                           "raw": f"Score: {i % 5}", "truncated": False}


def keys(indices) -> list[str]:
    return [entry(i)[0] for i in indices]


# -- helpers that run in child processes (module level: spawn imports them) ------------------------


def _write_batches(root: str, first: int, batches: int, batch_size: int, start_at: float) -> None:
    cache = JudgmentCache(root, JUDGE)
    while time.time() < start_at:  # every writer opens the new store at the same moment
        time.sleep(0.001)
    for b in range(batches):
        lo = first + b * batch_size
        cache.put(entry(i, verdict=float(first)) for i in range(lo, lo + batch_size))


def _write_until_killed(root: str, batch_size: int, progress: str) -> None:
    cache = JudgmentCache(root, JUDGE)
    for b in range(10**6):
        batch = [entry(i) for i in range(b * batch_size, (b + 1) * batch_size)]
        with open(progress, "a") as out:
            out.write(f"begin {b} {time.monotonic()}\n")
        cache.put(batch)
        with open(progress, "a") as out:  # after the commit: batch b is stored
            out.write(f"end {b} {time.monotonic()}\n")


# -- tests -----------------------------------------------------------------------------------------


def test_round_trip_across_objects_and_reopen(tmp_path):
    cache = JudgmentCache(tmp_path, JUDGE)
    assert cache.get(keys(range(3))) == {} and cache.count() == 0
    assert not (tmp_path / JUDGE).exists(), "a lookup in an empty cache created a store"
    assert cache.put(entry(i) for i in range(100)) == 100
    assert cache.get(keys([3, 4, 999])) == {entry(3)[0]: entry(3)[4], entry(4)[0]: entry(4)[4]}
    cache.close()
    again = JudgmentCache(tmp_path, JUDGE)  # another object, as a re-run opens it
    found = again.get(keys(range(0, 2000, 7)))  # more keys than one IN (...) chunk holds
    assert found == {entry(i)[0]: entry(i)[4] for i in range(0, 100, 7)}
    assert again.count() == 100 and again.get([]) == {}
    assert again.parts() == [tmp_path / JUDGE / "judgments.sqlite"]
    with sqlite3.connect(again.path) as con:  # the layout the module doc promises
        row = con.execute("SELECT model_id, prompt_version, input_hash, result_json, created_at FROM judgments "
                          "WHERE key = ?", [entry(5)[0]]).fetchone()
    assert row[:3] == ("model@1", "v1", "hash-5") and json.loads(row[3]) == entry(5)[4]
    assert dt.datetime.fromisoformat(row[4]).tzinfo is not None


def test_a_key_stored_twice_keeps_its_first_verdict(tmp_path):
    cache = JudgmentCache(tmp_path, JUDGE)
    assert cache.put([entry(1, verdict=1.0), entry(1, verdict=2.0), entry(2, verdict=2.0)]) == 2
    assert cache.put([entry(1, verdict=5.0), entry(3, verdict=3.0)]) == 1
    assert JudgmentCache(tmp_path, JUDGE).get(keys([1, 2, 3])) == {
        entry(1)[0]: entry(1, 1.0)[4], entry(2)[0]: entry(2, 2.0)[4], entry(3)[0]: entry(3, 3.0)[4]}
    assert cache.count() == 3


def test_writers_in_several_processes_lose_nothing(tmp_path):
    batches, batch_size = 60, 32
    span = batches * batch_size
    # three writers; the second's keys overlap half of the first's and half of the third's
    firsts = [0, span // 2, span]
    start_at = time.time() + 2.0
    workers = [SPAWN.Process(target=_write_batches, args=(str(tmp_path), f, batches, batch_size, start_at))
               for f in firsts]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    cache = JudgmentCache(tmp_path, JUDGE)
    expected = set(range(0, 2 * span))
    assert cache.count() == len(expected)
    found = cache.get(keys(expected))
    assert set(found) == set(keys(expected))
    for i in expected:  # each verdict is one writer's whole entry, from a writer that wrote that key
        writers = [f for f in firsts if f <= i < f + span]
        assert found[entry(i)[0]]["score"] in {float(f) for f in writers}


def test_a_writer_killed_mid_loop_leaves_every_committed_batch(tmp_path):
    batch_size = 2000
    progress = tmp_path / "progress.txt"
    writer = SPAWN.Process(target=_write_until_killed, args=(str(tmp_path), batch_size, str(progress)))
    writer.start()

    def events() -> list[tuple[str, int, float]]:
        lines = progress.read_text().splitlines() if progress.exists() else []
        return [(kind, int(b), float(t)) for kind, b, t in (line.split() for line in lines if line.count(" ") == 2)]

    deadline = time.monotonic() + 120
    while sum(kind == "end" for kind, _, _ in events()) < 3:
        assert writer.is_alive() and time.monotonic() < deadline, "the writer never got going"
        time.sleep(0.002)
    times = {(kind, b): t for kind, b, t in events()}
    last = max(b for kind, b in times if kind == "end")
    took = times["end", last] - times["begin", last]
    while ("begin", last + 1) not in times:
        time.sleep(0.0005)
        times = {(kind, b): t for kind, b, t in events()}
    time.sleep(max(0.0, times["begin", last + 1] + took / 2 - time.monotonic()))  # halfway through that put
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(30)
    assert writer.exitcode == -signal.SIGKILL

    reported = [b for kind, b, _ in events() if kind == "end"]
    cache = JudgmentCache(tmp_path, JUDGE)
    stored = cache.count()
    assert stored % batch_size == 0, "a half-written batch is visible"
    assert stored >= len(reported) * batch_size, "a batch the writer had committed was lost"
    committed = range((max(reported) + 1) * batch_size)
    found = cache.get(keys(committed))
    assert len(found) == len(committed) and found[entry(17)[0]] == entry(17)[4]
    with sqlite3.connect(cache.path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # the store goes on working: new entries, and the dead writer's last batch written again
    assert cache.put(entry(i) for i in range(stored, stored + 10)) == 10
    assert cache.count() == stored + 10 and len(cache.get(keys(range(stored + 10)))) == stored + 10


def _legacy_part(directory: Path, name: str, rows: list[tuple[str, str, str, str, dict]]) -> Path:
    """A part as the previous layout wrote it (its schema and its atomic write)."""
    schema = pa.schema([
        pa.field("key", pa.string(), nullable=False), pa.field("model_id", pa.string(), nullable=False),
        pa.field("judge", pa.string(), nullable=False), pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("input_hash", pa.string(), nullable=False), pa.field("result_json", pa.large_string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False)])
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    table = pa.table({
        "key": [r[0] for r in rows], "model_id": [r[1] for r in rows], "judge": [JUDGE] * len(rows),
        "prompt_version": [r[2] for r in rows], "input_hash": [r[3] for r in rows],
        "result_json": [json.dumps(r[4], sort_keys=True) for r in rows], "created_at": [now] * len(rows)},
        schema=schema)
    path = directory / name
    write_table_atomic(path, table.to_batches(), schema)
    return path


def test_previous_layout_parts_are_imported_once_and_served_without_recompute(tmp_path):
    directory = tmp_path / JUDGE
    _legacy_part(directory, "part-20240501T120000000000-11-aaaa.parquet", [entry(i, 1.0) for i in range(40)])
    _legacy_part(directory, "part-20240501T120001000000-11-bbbb.parquet", [entry(i, 2.0) for i in range(30, 70)])
    dead = directory / "part-20240501T120002000000-11-cccc.parquet.tmp-11"
    dead.write_bytes(b"PAR1 half written")

    row_keys = {n: entry(n)[0] for n in range(70)}
    calls: list[list[int]] = []
    results, hits, computed = compute_through_cache(
        row_keys, JudgmentCache(tmp_path, JUDGE), 8, lambda idx: calls.append(idx) or [{}] * len(idx),
        lambda key, i, result: (key, "model@1", "v1", f"hash-{i}", result))
    assert calls == [] and computed == 0 and len(hits) == 70
    assert [results[n]["score"] for n in (0, 35, 69)] == [1.0, 1.0, 2.0]  # the older part's verdict wins
    assert sorted(p.name for p in directory.iterdir() if "parquet" in p.name) == [dead.name]
    assert remove_dead_writes(tmp_path) == 1 and not dead.exists()

    # a part whose rows are committed but which a kill kept from being deleted: imported again, harmlessly
    cache = JudgmentCache(tmp_path, JUDGE)
    assert cache.count() == 70
    cache.close()
    _legacy_part(directory, "part-20240501T120003000000-12-dddd.parquet", [entry(5, 4.0), entry(70, 4.0)])
    reopened = JudgmentCache(tmp_path, JUDGE)
    assert reopened.get(keys([5, 70])) == {entry(5)[0]: entry(5, 1.0)[4], entry(70)[0]: entry(70, 4.0)[4]}
    assert reopened.count() == 71 and reopened.parts() == [reopened.path]


def test_compute_through_cache_computes_each_key_once_and_resumes(tmp_path):
    row_keys = {0: "a", 1: "b", 2: "a", 3: "c", 4: "d", 5: "e", 6: "b"}
    calls: list[list[int]] = []

    def compute(indices: list[int]) -> list[dict]:
        calls.append(indices)
        if len(calls) == 2 and fail_second[0]:
            raise RuntimeError("killed")
        return [{"score": float(i)} for i in indices]

    def record(key: str, i: int, result: dict) -> tuple:
        return key, "model@1", "v1", f"hash-{i}", result

    fail_second = [True]
    with pytest.raises(RuntimeError):
        compute_through_cache(row_keys, JudgmentCache(tmp_path, JUDGE), 2, compute, record)
    assert calls == [[0, 1], [3, 4]] and JudgmentCache(tmp_path, JUDGE).count() == 2  # batch one survived

    calls.clear()
    fail_second[0] = False
    results, hits, computed = compute_through_cache(row_keys, JudgmentCache(tmp_path, JUDGE), 2, compute, record)
    assert calls == [[3, 4], [5]] and computed == 3 and set(hits) == {"a", "b"}
    assert {i: r["score"] for i, r in results.items()} == {0: 0.0, 1: 1.0, 2: 0.0, 3: 3.0, 4: 4.0, 5: 5.0, 6: 1.0}

    calls.clear()
    again, hits, computed = compute_through_cache(row_keys, JudgmentCache(tmp_path, JUDGE), 2, compute, record)
    assert calls == [] and computed == 0 and again == results and len(hits) == 5
    without_cache, _, computed = compute_through_cache(row_keys, None, 2, compute, record)
    assert computed == 5 and without_cache == results


def test_compact_keeps_every_judgment(tmp_path):
    cache = JudgmentCache(tmp_path, JUDGE)
    for b in range(20):
        cache.put(entry(i) for i in range(b * 32, (b + 1) * 32))
    assert cache.compact() == 640 and cache.parts() == [cache.path]
    assert cache.get(keys([0, 639])) == {entry(0)[0]: entry(0)[4], entry(639)[0]: entry(639)[4]}
    assert JudgmentCache(tmp_path, "judge_never_used").compact() == 0
