"""Ingest throughput on C4-style json.gz against two baselines, in the same run, one core:

- `pyarrow.json`: Arrow's C++ JSON reader + Parquet writer, no per-row validation or quarantine
  (the speed floor for "read JSON lines into Parquet");
- naive Python: gzip + json.loads per line + Table.from_pylist + one write_table (whole file in RAM).

thresher validates every row (UTF-8, JSON, text type, size), quarantines bad ones, derives
doc_ids and writes atomically; the ratios show what that costs.

    python bench/ingest_throughput.py [--docs 50000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import write_c4_like  # noqa: E402

from thresher.config import IngestConfig, InputSpec  # noqa: E402
from thresher.storage.ingest import ingest_shard  # noqa: E402
from thresher.storage.readers import discover_shards  # noqa: E402
from thresher.storage.run_dir import RunDir  # noqa: E402


def thresher_ingest(corpus: Path, out: Path) -> int:
    spec = InputSpec(paths=[str(corpus)], format="c4")
    run = RunDir(out)
    run.init()
    return sum(ingest_shard(run, s, spec, IngestConfig())["rows_written"] for s in discover_shards(spec))


def pyarrow_json(corpus: Path, out: Path) -> int:
    with gzip.open(corpus, "rb") as handle:
        table = pajson.read_json(handle)
    pq.write_table(table, out / "pyarrow.parquet", compression="zstd")
    return table.num_rows


def naive_python(corpus: Path, out: Path) -> int:
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    pq.write_table(pa.Table.from_pylist(rows), out / "naive.parquet", compression="zstd")
    return len(rows)


def main() -> None:
    # One core for every contender: Arrow's readers would otherwise use all of them.
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = write_c4_like(tmp / "c4.json.gz", args.docs)
        print(f"corpus: {args.docs:,} C4 sample documents repeated with edits, "
              f"{corpus.stat().st_size / 2**20:.1f} MiB gz")
        rates = {}
        for name, fn in (("thresher", thresher_ingest), ("pyarrow.json", pyarrow_json), ("naive python", naive_python)):
            out = tmp / name.replace(" ", "_")
            out.mkdir()
            started = time.perf_counter()
            rows = fn(corpus, out)
            seconds = time.perf_counter() - started
            rates[name] = rows / seconds
            print(f"{name:>14}: {rows:,} docs in {seconds:.2f} s = {rates[name]:,.0f} docs/s")
        for baseline in ("pyarrow.json", "naive python"):
            print(f"thresher / {baseline}: {rates['thresher'] / rates[baseline]:.2f}x")


if __name__ == "__main__":
    main()
