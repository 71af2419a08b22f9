"""Heuristic quality signals on one core: thresher's batch scorer vs its first, per-document Python
implementation vs datatrove's Gopher quality + Gopher repetition + C4 + FineWeb filters.

The corpus: the real C4 sample (bench/corpus.py), --docs documents with two words swapped per copy,
read back from the gzip JSON lines that `write_c4_like` writes. Repetition inflates volume, not
variety: the vocabulary of 5,000 documents is that of the 200 real ones, which flatters the per
distinct-word work of the batch scorer a little (it tests each distinct word once per batch).

  batch        HeuristicsScorer.score over record batches of --batch-rows (the shard runner's size):
               polars string expressions + Arrow hashing + numpy (thresher/scorers/heuristics_batch.py)
  python loop  the first implementation, one document at a time in Python (kept as the parity
               reference in tests/scorers/heuristics_reference.py; loaded from there, as the only
               copy of it), with the same Arrow conversion around it as its `score` had
  datatrove    0.10.1's GopherQualityFilter -> GopherRepetitionFilter -> C4QualityFilter ->
               FineWebQualityFilter, a document going on to the next filter only while kept, as a
               datatrove pipeline runs them (so datatrove computes less than thresher, which computes
               every signal of every document). It tokenises with spaCy (`spacy.blank("en")`), the
               tokenizer it loads for English; spaCy must be installed. It runs on the first
               --datatrove-docs documents only (tens of docs/s).

Each engine runs in its own process pinned to one CPU (--cpu) --repeats times; the best run counts
(the machine is shared). docs/s is given by wall time and by the process's CPU time: on a machine
where other work competes for the core, the CPU-time rate is the steadier measure of the work.
Peak RSS is the child's high-water mark (ru_maxrss), imports and corpus included; "RSS after load"
is what it held before scoring. "start" is the engine's imports plus its first call (the batch
scorer builds its regex character classes from Python's then, once a process).
The batch scorer's output is compared with the Python loop's on --check-docs documents first.

Run: `python bench/heuristics_throughput.py [--docs 5000] [--datatrove-docs 300] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ENGINES = ("batch", "python loop", "datatrove")


def _load(path: Path, n: int) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(n), handle)]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _engine(name: str, batch_rows: int):
    """(warm-up, run): run(texts) scores every text and returns how many rows it produced."""
    import pyarrow as pa

    def batches(texts: list[str]) -> list[pa.RecordBatch]:
        table = pa.table(
            {"doc_id": pa.array([str(i) for i in range(len(texts))]), "text": pa.array(texts, pa.large_string())}
        )
        return table.to_batches(max_chunksize=batch_rows)

    if name == "batch":
        from thresher.scorers.heuristics import HeuristicsScorer

        scorer = HeuristicsScorer()

        def run(texts: list[str]) -> int:
            return sum(scorer.score(batch).num_rows for batch in batches(texts))

        return (lambda: scorer.score(batches(["Warm up the regexes."])[0])), run
    if name == "python loop":
        from tests.scorers.heuristics_reference import reference_row
        from thresher.scorers.heuristics import _COLUMNS, _SCHEMA

        def run(texts: list[str]) -> int:
            rows = 0
            for batch in batches(texts):
                values = [reference_row(text or "") for text in batch.column("text").to_pylist()]
                columns = list(zip(*values))
                arrays = [batch.column("doc_id")] + [pa.array(v, type=t) for v, (_, t) in zip(columns, _COLUMNS)]
                rows += pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA).num_rows
            return rows

        return (lambda: None), run
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()]

    def keep(doc: Document) -> bool:
        for step in filters:
            verdict = step.filter(doc)
            if not (verdict[0] if isinstance(verdict, tuple) else verdict):
                return False
        return True

    def run(texts: list[str]) -> int:
        return sum(keep(Document(text=text, id=str(i))) or 1 for i, text in enumerate(texts))

    return (lambda: keep(Document(text="Warm up the tokenizer. " * 20, id="w"))), run


def child(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {args.cpu})
    texts = _load(Path(args.corpus), args.n)
    start = time.perf_counter()
    warm, run = _engine(args.engine, args.batch_rows)
    warm()
    startup = time.perf_counter() - start
    loaded = _rss_mib()
    best = best_cpu = math.inf
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = run(texts)
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
        assert rows == len(texts), (rows, len(texts))
    print(json.dumps({"docs": len(texts), "seconds": best, "cpu_seconds": best_cpu, "startup": startup,
                      "loaded": loaded, "peak": _rss_mib()}))


def check(corpus: Path, n: int) -> str:
    """Compare the batch scorer with the Python loop on the first `n` documents."""
    import pyarrow as pa

    from tests.scorers.heuristics_reference import reference_row
    from thresher.scorers.heuristics import HeuristicsScorer

    texts = _load(corpus, n)
    batch = pa.record_batch({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    got = HeuristicsScorer().score(batch).to_pydict()
    names = list(got)[1:]
    bad = 0
    for i, text in enumerate(texts):
        for name, want in zip(names, reference_row(text)):
            value = got[name][i]
            bad += not (math.isclose(value, want, rel_tol=1e-12) if isinstance(want, float) else value == want)
    return f"batch vs python loop on {len(texts)} docs x {len(names)} columns: {bad} differences"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--datatrove-docs", type=int, default=300)
    parser.add_argument("--check-docs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=None, help="default: the shard runner's SCORE_BATCH_ROWS")
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_rows is None:
        from thresher.scorers.apply import SCORE_BATCH_ROWS

        args.batch_rows = SCORE_BATCH_ROWS
    if args.engine:
        child(args)
        return

    from corpus import write_c4_like

    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_c4_like(Path(tmp) / "c4_like.jsonl.gz", args.docs)
        print(f"corpus: {args.docs} C4-derived docs (200 real pages, two words swapped per copy); "
              f"one core (cpu {args.cpu}); batches of {args.batch_rows}; best of {args.repeats}; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        print(check(corpus, min(args.check_docs, args.docs)))
        results = {}
        for engine in args.engines.split(","):
            n = args.datatrove_docs if engine == "datatrove" else args.docs
            out = subprocess.run(
                [sys.executable, __file__, "--engine", engine, "--corpus", str(corpus), "--n", str(n),
                 "--repeats", str(1 if engine == "datatrove" else args.repeats), "--cpu", str(args.cpu),
                 "--batch-rows", str(args.batch_rows)],
                capture_output=True, text=True, check=False,
            )
            if out.returncode:
                print(f"{engine}: failed\n{out.stderr[-2000:]}")
                continue
            results[engine] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    rate = {engine: r["docs"] / r["seconds"] for engine, r in results.items()}
    cpu_rate = {engine: r["docs"] / r["cpu_seconds"] for engine, r in results.items()}
    print("\n| engine | docs | docs/s (wall) | docs/s (CPU time) | batch is faster by (wall, CPU) | start s "
          "| RSS after load MiB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for engine, r in results.items():
        ratio = (f"{rate['batch'] / rate[engine]:.1f}x, {cpu_rate['batch'] / cpu_rate[engine]:.1f}x"
                 if "batch" in rate and engine != "batch" else "")
        print(f"| {engine} | {r['docs']} | {rate[engine]:,.0f} | {cpu_rate[engine]:,.0f} | {ratio} | "
              f"{r['startup']:.2f} | {r['loaded']:.0f} | {r['peak']:.0f} |")


if __name__ == "__main__":
    main()
