"""One read per shard for every scorer (`score_shard_once`, what `thresher score` runs) against one
scorer at a time (`score_shard`, one read of the shard per scorer), on the same run, one core.

    python bench/score_once.py [--docs 20000] [--scorers heuristics,langid]

The corpus is the real C4 sample of ../shared/data repeated with random edits (see bench/corpus.py),
ingested as one shard. Both paths write the same sidecars (tests/scorers/test_apply.py); what
differs is how often the shard's text is read and decoded, and how many passes run over it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import write_c4_like  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--scorers", default="heuristics,langid")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from thresher.config import IngestConfig, InputSpec
    from thresher.flows.ingest import plan_shards
    from thresher.scorers.apply import score_shard, score_shard_once
    from thresher.scorers.registry import build_scorer
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.run_dir import RunDir

    root = Path(tempfile.mkdtemp(prefix="score-once-"))
    try:
        inputs = root / "inputs"
        inputs.mkdir()
        write_c4_like(inputs / "c4.json.gz", args.docs)
        run = RunDir(root / "run")
        run.init()
        for spec, shard in plan_shards([InputSpec(paths=[str(inputs)], format="c4")]):
            ingest_shard(run, shard, spec, IngestConfig())
        scorers = [build_scorer(name, {}) for name in args.scorers.split(",")]
        for scorer in scorers:
            scorer.prepare()
        table, shard, _ = run.data_parts()[0]
        print(f"{args.docs:,} C4-derived documents (the 200-page sample repeated with edits), one shard, "
              f"scorers {args.scorers}, best of {args.repeat}")
        best = {"one read per shard": float("inf"), "one scorer at a time": float("inf")}
        for _ in range(args.repeat):
            for label in best:
                shutil.rmtree(run.root / "scores", ignore_errors=True)
                started = time.perf_counter()
                if label == "one read per shard":
                    score_shard_once(run, scorers, table, shard)
                else:
                    for scorer in scorers:
                        score_shard(run, scorer, table, shard)
                best[label] = min(best[label], time.perf_counter() - started)
        base = best["one scorer at a time"]
        for label, seconds in best.items():
            print(f"{label:22s} {seconds:7.2f} s  {args.docs / seconds:8,.0f} docs/s  {base / seconds:5.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
