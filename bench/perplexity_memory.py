"""Peak memory of the perplexity stage's distribution step (percentiles + log histogram) over a run
with 1x and 10x the sidecar rows: the former method (every value of the run in one numpy array)
against the streaming one (`thresher.perplexity.distribution`), both measured in this run.

Each measurement is a fresh child process that imports everything and runs the method once over a
1,000-row run (which faults in the code pages of Arrow's Parquet reader and compute kernels, some
70 MiB of RSS that does not depend on the data), records VmHWM (its peak RSS so far), runs the
method over the run's `scores/kenlm@1/` parts and records VmHWM again; the difference is the
memory the step itself needed. The sidecars are synthetic (what KenLM scoring
writes: doc_id, perplexity, log10 prob, words, lines; log-normal perplexities, 1 % nulls), because
this measures the distribution step, not scoring. Both methods must return identical results.

    .venv/bin/python bench/perplexity_memory.py                  # 1M and 10M rows
    .venv/bin/python bench/perplexity_memory.py --rows 200000    # 200k and 2M
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
KEY, COLUMN = "kenlm@1", "kenlm_perplexity"
ROWS_PER_PART = 500_000

# The child. `in_memory` is the former `perplexity_distribution` (before the streaming rewrite): the baseline.
CHILD = r"""
import json, math, sys, time
sys.path.insert(0, sys.argv[3])
import numpy as np
import pyarrow.parquet as pq
from thresher.config_base import ScorerSpec
from thresher.perplexity.config import PerplexityConfig
from thresher.perplexity.distribution import perplexity_distribution
from thresher.storage.run_dir import RunDir


def in_memory(run, key, column, config):
    values, nulls = [], 0
    for part in sorted((run.root / "scores" / key).glob("part-*.parquet")):
        array = pq.read_table(part, columns=[column]).column(column)
        nulls += array.null_count
        values.append(array.drop_null().to_numpy())
    data = np.concatenate(values) if values else np.zeros(0)
    data = data[np.isfinite(data) & (data > 0)]
    result = {"scorer": key, "column": column, "scored": int(data.size), "null": int(nulls)}
    if not data.size:
        return {**result, "quantiles": {}, "histogram": []}
    result["quantiles"] = {f"p{round(q * 100)}": float(np.quantile(data, q)) for q in config.quantiles}
    result["min"], result["max"] = float(data.min()), float(data.max())
    lo, hi = math.log10(data.min()), math.log10(data.max())
    edges = np.logspace(lo, hi if hi > lo else lo + 1e-9, config.histogram_bins + 1)
    counts, edges = np.histogram(data, bins=edges)
    result["histogram"] = [{"from": float(a), "to": float(b), "documents": int(n)}
                           for a, b, n in zip(edges[:-1], edges[1:], counts)]
    return result


def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])


method = {"old": in_memory, "new": perplexity_distribution}[sys.argv[2]]
config = PerplexityConfig(scorers=[ScorerSpec(name="kenlm")])
method(RunDir(sys.argv[4]), "kenlm@1", "kenlm_perplexity", config)  # warm-up: library code, not data
run = RunDir(sys.argv[1])
before = hwm_kib()
started = time.perf_counter()
result = method(run, "kenlm@1", "kenlm_perplexity", config)
seconds = time.perf_counter() - started
after = hwm_kib()
print(json.dumps({"baseline_mib": before / 1024, "peak_mib": after / 1024, "step_mib": (after - before) / 1024,
                  "seconds": seconds, "result": result}))
"""


def write_run(root: Path, rows: int, seed: int = 0) -> Path:
    """A run directory holding only synthetic KenLM sidecars of `rows` rows in parts of 500k."""
    directory = root / "scores" / KEY
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i, start in enumerate(range(0, rows, ROWS_PER_PART)):
        n = min(ROWS_PER_PART, rows - start)
        perplexity = rng.lognormal(6.0, 0.8, n)
        words = rng.integers(5, 2000, n)
        table = pa.table({
            "doc_id": pa.array([f"{i:05d}-{j:07d}" for j in range(n)], pa.string()),
            COLUMN: pa.array(perplexity, pa.float64(), mask=rng.random(n) < 0.01),
            "kenlm_log10_prob": pa.array(-np.log10(perplexity) * (words + 1), pa.float64()),
            "kenlm_words": pa.array(words, pa.int64()),
            "kenlm_lines": pa.array(rng.integers(1, 60, n), pa.int64()),
        })
        pq.write_table(table, directory / f"part-{i:05d}.parquet", compression="zstd")
    return root


def measure(run: Path, method: str, warm_up: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(run), method, str(REPO), str(warm_up)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="sidecar rows of the 1x run (10x is ten times)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perplexity-memory-") as tmp:
        rows_of = {"1x": args.rows, "10x": 10 * args.rows}
        print(f"{'size':>4} {'rows':>11} {'method':>6} {'peak RSS':>10} {'step':>10} {'seconds':>8}")
        steps: dict[tuple[str, str], float] = {}
        warm_up = write_run(Path(tmp) / "warm-up", 1000, seed=1)
        for size, rows in rows_of.items():
            run = write_run(Path(tmp) / size, rows)
            results = {}
            for method in ("old", "new"):
                m = measure(run, method, warm_up)
                results[method] = m["result"]
                steps[size, method] = m["step_mib"]
                print(f"{size:>4} {rows:>11,} {method:>6} {m['peak_mib']:>7.1f} MiB {m['step_mib']:>6.1f} MiB "
                      f"{m['seconds']:>8.2f}")
            if results["old"] != results["new"]:
                raise SystemExit(f"{size}: the two methods disagree:\n{results['old']}\n{results['new']}")
        print("results identical (percentiles and histogram) at both sizes")
        for method in ("old", "new"):
            print(f"{method}: step memory 10x / 1x = {steps['10x', method] / max(steps['1x', method], 0.1):.2f}")
        for size in rows_of:
            print(f"{size}: step memory new / old = {steps[size, 'new'] / max(steps[size, 'old'], 0.1):.3f}")


if __name__ == "__main__":
    main()
