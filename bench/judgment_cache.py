"""Judgment-cache lookups as the cache grows from 1 k to 1 M entries: the SQLite store
(thresher.judges.cache.JudgmentCache) against the previous Parquet-parts layout (copied below as
`ParquetPartsCache`, the named baseline).

Entries look like a judge's: 32-hex keys (blake2b), a model id, a prompt version, an input hash and
a result of about 200 bytes of JSON ({"score", "raw", "parse_error", "truncated", "mass"}). Each store
is filled as a judge fills it: one `put` of 32 entries per batch. At each size the bench times
--lookups lookups of 32 keys (16 stored, 16 never stored, drawn with --seed) and checks each
answer (16 hits, the right verdicts):

  new (SQLite)             JudgmentCache, one open connection (as within a judge call); "open+get"
                           is a fresh JudgmentCache object's first lookup, median of up to 100 (a judge
                           opens one per call)
  old (Parquet parts)      the previous layout: one part per put, every get scans all parts with DuckDB;
                           filled only up to --old-max-entries (beyond it one lookup takes seconds)
  old compacted            the previous layout after compact(): every entry in one Parquet part

A lookup series stops early after --budget-s seconds (at least 3 lookups); the table says how many
ran. The machine is shared (2 cores): expect 10-30 % run-to-run variation.

    .venv/bin/python bench/judgment_cache.py [--max-entries 1000000] [--old-max-entries 100000]
                                             [--lookups 200] [--budget-s 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thresher.judges.cache import JudgmentCache  # noqa: E402
from thresher.storage.parquet_io import write_table_atomic  # noqa: E402

SIZES = (1_000, 10_000, 100_000, 1_000_000)
BATCH = 32
MODEL_ID = "Qwen/Qwen2.5-1.5B-Instruct@a1b2c3d"
WORDS = ("the answer is helpful accurate and complete it follows the instruction closely but misses "
         "one detail about the format so the rating is four").split()

# --- the baseline: the previous JudgmentCache storage, verbatim but for names ----------------------

OLD_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("judge", pa.string(), nullable=False),
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("input_hash", pa.string(), nullable=False),
        pa.field("result_json", pa.large_string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class ParquetPartsCache:
    """The previous layout: `<root>/<judge>/part-*.parquet`, one part per put, DuckDB over all parts."""

    def __init__(self, root: str | os.PathLike[str], judge: str):
        self.root = Path(root)
        self.judge = judge
        self.dir = self.root / judge

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []

    def get(self, keys: Sequence[str]) -> dict[str, dict]:
        parts = self.parts()
        if not parts or not keys:
            return {}
        import duckdb

        con = duckdb.connect()
        try:
            wanted = pa.table({"key": pa.array(sorted(set(keys)), pa.string())})
            con.register("wanted", wanted)
            rows = con.execute(
                "SELECT c.key, any_value(c.result_json) FROM read_parquet(?) AS c "
                "SEMI JOIN wanted USING (key) GROUP BY c.key",
                [[str(p) for p in parts]],
            ).fetchall()
        finally:
            con.close()
        return {key: json.loads(result) for key, result in rows}

    def put(self, entries: Iterable[tuple[str, str, str, str, dict]]) -> int:
        rows = list(entries)
        if not rows:
            return 0
        now = dt.datetime.now(dt.UTC)
        table = pa.table(
            {
                "key": [r[0] for r in rows],
                "model_id": [r[1] for r in rows],
                "judge": [self.judge] * len(rows),
                "prompt_version": [r[2] for r in rows],
                "input_hash": [r[3] for r in rows],
                "result_json": [json.dumps(r[4], sort_keys=True, ensure_ascii=False) for r in rows],
                "created_at": [now] * len(rows),
            },
            schema=OLD_SCHEMA,
        )
        name = f"part-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        write_table_atomic(self.dir / name, table.to_batches(), OLD_SCHEMA)
        return len(rows)


# --- the workload ------------------------------------------------------------------------------------


def key_of(i: int) -> str:
    return hashlib.blake2b(f"judgment {i}".encode(), digest_size=16).hexdigest()


def entry(i: int) -> tuple[str, str, str, str, dict]:
    rng = random.Random(i)
    raw = " ".join(rng.choice(WORDS) for _ in range(14)) + f" Score: {1 + i % 5}"
    result = {"score": float(1 + i % 5), "raw": raw, "parse_error": None, "truncated": i % 17 == 0,
              "mass": round(rng.random(), 6)}
    in_hash = hashlib.blake2b(f"input {i}".encode(), digest_size=16).hexdigest()
    return key_of(i), MODEL_ID, "1", in_hash, result


def fill(cache, start: int, stop: int) -> float:
    """Put entries [start, stop) in batches of BATCH; seconds spent in `put` (making the entries
    is not timed)."""
    spent = 0.0
    for lo in range(start, stop, BATCH):
        batch = [entry(i) for i in range(lo, min(lo + BATCH, stop))]
        started = time.perf_counter()
        cache.put(batch)
        spent += time.perf_counter() - started
    return spent


def lookup_batches(stored: int, n: int, seed: int) -> list[tuple[list[str], list[int]]]:
    """n batches of (16 stored keys + 16 never-stored keys, the stored indices)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        hits = rng.sample(range(stored), BATCH // 2)
        misses = [key_of(10**9 + rng.randrange(10**9)) for _ in range(BATCH // 2)]
        out.append(([key_of(i) for i in hits] + misses, hits))
    return out


def time_lookups(get: Callable[[list[str]], dict], batches, budget_s: float) -> tuple[float, float, int]:
    """(mean, median) seconds per lookup and lookups run; every answer is checked."""
    times = []
    deadline = time.perf_counter() + budget_s
    for keys, hits in batches:
        started = time.perf_counter()
        found = get(keys)
        times.append(time.perf_counter() - started)
        assert set(found) == {key_of(i) for i in hits}, "a lookup returned the wrong keys"
        assert all(found[key_of(i)]["score"] == float(1 + i % 5) for i in hits), "a wrong verdict"
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return statistics.fmean(times), statistics.median(times), len(times)


def write_compacted(root: Path, store: JudgmentCache) -> ParquetPartsCache:
    """The old layout after compact(): every entry of `store` in one Parquet part, sorted by key."""
    cache = ParquetPartsCache(root, store.judge)
    with sqlite3.connect(store.path) as con:
        rows = con.execute("SELECT key, model_id, prompt_version, input_hash, result_json FROM judgments").fetchall()
    columns = list(zip(*rows))
    now = dt.datetime.now(dt.UTC)
    table = pa.table({
        "key": columns[0], "model_id": columns[1], "judge": [cache.judge] * len(rows),
        "prompt_version": columns[2], "input_hash": columns[3], "result_json": columns[4],
        "created_at": [now] * len(rows),
    }, schema=OLD_SCHEMA).sort_by("key")
    write_table_atomic(cache.dir / "part-compact.parquet", table.to_batches(), OLD_SCHEMA)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-entries", type=int, default=SIZES[-1], help="largest size measured")
    parser.add_argument("--old-max-entries", type=int, default=100_000,
                        help="largest size the Parquet-parts baseline is filled to (one part per put)")
    parser.add_argument("--lookups", type=int, default=200, help="lookups of 32 keys per size and store")
    parser.add_argument("--budget-s", type=float, default=10.0, help="stop a lookup series after this long")
    parser.add_argument("--seed", type=int, default=0, help="draws the looked-up keys")
    args = parser.parse_args()
    sizes = [s for s in SIZES if s <= args.max_entries]

    print(f"judgment cache, entries of ~{len(json.dumps(entry(0)[4]))} B result JSON, puts of {BATCH}, "
          f"lookups of {BATCH} keys ({BATCH // 2} hits + {BATCH // 2} misses), seed {args.seed}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="judgment-cache-bench-") as tmp:
        new = JudgmentCache(Path(tmp) / "new", "judge_bench")
        old = ParquetPartsCache(Path(tmp) / "old", "judge_bench")
        filled_new = filled_old = 0
        for size in sizes:
            batches = lookup_batches(size, args.lookups, args.seed + size)
            seconds = fill(new, filled_new, size)
            put_ms = 1000 * seconds / ((size - filled_new) / BATCH)
            filled_new = size
            assert new.count() == size
            new_lookup, new_median, new_n = time_lookups(new.get, batches, args.budget_s)
            opened = []
            for keys, _ in batches[:100]:
                started = time.perf_counter()
                with JudgmentCache(Path(tmp) / "new", "judge_bench") as fresh:
                    fresh.get(keys)
                opened.append(time.perf_counter() - started)
            store_bytes = sum(p.stat().st_size for p in new.dir.glob("judgments.sqlite*"))  # with -wal, -shm
            row = {"size": size, "put_ms": put_ms, "new_s": new_lookup, "new_med": new_median, "new_n": new_n,
                   "open_s": statistics.median(opened), "db_mb": store_bytes / 2**20}

            if size <= args.old_max_entries:
                seconds = fill(old, filled_old, size)
                row["old_put_ms"] = 1000 * seconds / ((size - filled_old) / BATCH)
                filled_old = size
                row["old_parts"] = len(old.parts())
                row["old_s"], _, row["old_n"] = time_lookups(old.get, batches, args.budget_s)
            compacted = write_compacted(Path(tmp) / f"compacted-{size}", new)
            row["comp_s"], _, row["comp_n"] = time_lookups(compacted.get, batches, args.budget_s)
            rows.append(row)
            print(f"  {size:>9,} entries measured", flush=True)

    def ms(seconds: float | None, n: int | None = None) -> str:
        if seconds is None:
            return "-"
        return f"{1000 * seconds:.3f}" + (f" ({n})" if n is not None and n < args.lookups else "")

    def ratio(numerator: float | None, denominator: float | None) -> str:
        return "-" if numerator is None or denominator is None else f"{numerator / denominator:.4f}"

    print("\nlookup ms = mean per get of 32 keys (in brackets: lookups run, where the budget cut the series "
          "short); median: the same series' median (robust to the shared machine's hiccups); put ms = mean per "
          "put of 32 entries while filling up to that size")
    columns = ["entries", "new put ms", "new lookup ms", "new lookup median", "new open+get median", "new MiB",
               "old parts", "old put ms", "old lookup ms", "old compacted ms", "new/old", "new/old compacted"]
    table = []
    for r in rows:
        old_put = r.get("old_put_ms")
        table.append([f"{r['size']:,}", f"{r['put_ms']:.3f}", ms(r["new_s"]), ms(r["new_med"]), ms(r["open_s"]),
                      f"{r['db_mb']:.1f}",
                      str(r.get("old_parts", "-")), "-" if old_put is None else f"{old_put:.3f}",
                      ms(r.get("old_s"), r.get("old_n")), ms(r["comp_s"], r["comp_n"]),
                      ratio(r["new_s"], r.get("old_s")), ratio(r["new_s"], r["comp_s"])])
    widths = [max(len(c), *(len(t[k]) for t in table)) for k, c in enumerate(columns)]
    print("| " + " | ".join(c.rjust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for t in table:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(t, widths)) + " |")
    first, last = rows[0], rows[-1]
    print(f"\nnew({last['size']:,}) / new({first['size']:,}): lookup {last['new_s'] / first['new_s']:.2f}x "
          f"(median {last['new_med'] / first['new_med']:.2f}x), "
          f"open+get {last['open_s'] / first['open_s']:.2f}x, put {last['put_ms'] / first['put_ms']:.2f}x")
    if last["size"] > args.old_max_entries:
        print(f"old (Parquet parts) filled only to {args.old_max_entries:,} entries: one part per put, and every "
              "lookup reads every part")

if __name__ == "__main__":
    main()
