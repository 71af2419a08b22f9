"""Peak RSS of ingesting one C4-style shard of 1x and 10x the size: it must not grow with the
input (ratio <= 1.2), because readers stream bounded Arrow batches into a streaming Parquet writer.

    python bench/ingest_memory.py [--docs 50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import write_c4_like  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from thresher.config import IngestConfig, InputSpec
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import discover_shards
from thresher.storage.run_dir import RunDir
spec = InputSpec(paths=[sys.argv[1]], format="c4")
run = RunDir(sys.argv[2]); run.init()
started = time.perf_counter()
stats = [ingest_shard(run, shard, spec, IngestConfig()) for shard in discover_shards(spec)]
print(json.dumps({"rows": sum(s["rows_written"] for s in stats), "seconds": time.perf_counter() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(corpus: Path, run_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(run_dir)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=50_000, help="documents in the 1x input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for factor in (1, 10):
            corpus = write_c4_like(tmp / f"c4-{factor}x.json.gz", args.docs * factor)
            mib = corpus.stat().st_size / 2**20
            results[factor] = measure(corpus, tmp / f"run-{factor}x") | {"input_mib_gz": round(mib, 1)}
            r = results[factor]
            print(f"{factor:>2}x: {r['rows']:>9,} docs, {r['input_mib_gz']:>7.1f} MiB gz, "
                  f"{r['rows'] / r['seconds']:>8,.0f} docs/s, peak RSS {r['peak_rss_mib']:.0f} MiB")
        ratio = results[10]["peak_rss_mib"] / results[1]["peak_rss_mib"]
        print(f"peak RSS 10x / 1x = {ratio:.2f} (must be <= 1.2)")
        print("corpus: the C4 sample of ../shared/data repeated with two words swapped per copy")
        sys.exit(0 if ratio <= 1.2 else 1)


if __name__ == "__main__":
    main()
