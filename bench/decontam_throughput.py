"""Decontamination on ONE core: decontam@1 (sorted uint64 index, memory-mapped, batch searchsorted)
against a naive Python set of word 13-gram tuples, on the same C4 pages and the same benchmarks.

The benchmarks are synthetic (volume, not realism): items of 62 words drawn with a seeded RNG from
the C4 sample's vocabulary, so each item gives 50 distinct 13-grams; `--sizes` sets the number of
n-grams. The corpus is the 200 C4 pages of tests/data repeated to `--docs`, every 10th page with a
benchmark item pasted in the middle (so both sides find matches; the bench checks they find the
same ones). Each measurement runs in its own process pinned to one core; build memory is the peak
RSS (ru_maxrss) above the process's RSS just before the build:

    python bench/decontam_throughput.py [--sizes 1000000 10000000] [--docs 2000] [--naive-max 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
ITEM_WORDS = 62
N = 13


def _pin() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def c4_pages() -> list[str]:
    return [json.loads(line)["text"] for line in (DATA / "c4_sample.jsonl").open(encoding="utf-8")]


def write_benchmark(path: Path, ngrams: int, seed: int) -> int:
    from thresher.decontam.ngrams import normalized_words

    vocabulary = sorted({w for page in c4_pages() for w in normalized_words(page)})
    rng = random.Random(seed)
    items = -(-ngrams // (ITEM_WORDS - N + 1))
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(items):
            handle.write(json.dumps({"question": " ".join(rng.choices(vocabulary, k=ITEM_WORDS))}) + "\n")
    return items


def corpus(benchmark: Path, docs: int) -> list[str]:
    pages = c4_pages()
    with benchmark.open(encoding="utf-8") as handle:
        items = [json.loads(next(handle))["question"] for _ in range(docs // 10 + 1)]
    texts = []
    for i in range(docs):
        page = pages[i % len(pages)]
        if i % 10 == 0:
            half = len(page) // 2
            page = f"{page[:half]} {items[i // 10]} {page[half:]}"
        texts.append(page)
    return texts


# -- workers (one process each) --------------------------------------------------------------------


def _scorer(benchmark: str, cache: str):
    from thresher.decontam.scorer import DecontaminationScorer

    return DecontaminationScorer(benchmarks=[{"name": "synthetic", "paths": [benchmark], "fields": ["question"]}],
                                 cache_dir=cache)


def worker_build(args) -> dict:
    from thresher.decontam.index import index_stats

    scorer = _scorer(args.benchmark, args.cache)
    start = _rss_mib()
    started = time.perf_counter()
    scorer.prepare()
    seconds = time.perf_counter() - started
    stats = index_stats(Path(args.cache) / scorer.index_keys[0] / "ngrams.npy")
    return {"seconds": seconds, "ngrams": stats["ngrams"], "spilled": stats["spilled"], "peak_rss_mib": _peak_rss_mib(),
            "growth_mib": _peak_rss_mib() - start}


def _batches(texts: list[str], rows: int = 1024):
    import pyarrow as pa

    for start in range(0, len(texts), rows):
        chunk = texts[start: start + rows]
        yield pa.record_batch([pa.array([f"d{start + i}" for i in range(len(chunk))]),
                               pa.array(chunk, pa.large_string())], names=["doc_id", "text"])


def worker_score(args) -> dict:
    scorer = _scorer(args.benchmark, args.cache)
    texts = corpus(Path(args.benchmark), args.docs)
    batches = list(_batches(texts))
    scorer.score(batches[0])  # maps the index: a worker does it once
    best, overlaps = float("inf"), []
    for _ in range(3):
        started = time.perf_counter()
        results = [scorer.score(batch) for batch in batches]
        best = min(best, time.perf_counter() - started)
    for result in results:
        overlaps += result.column("decontam_overlap").to_pylist()
    return {"docs_per_s": len(texts) / best, "overlap_sum": sum(overlaps), "matched_docs": sum(o > 0 for o in overlaps),
            "peak_rss_mib": _peak_rss_mib()}


def worker_naive(args) -> dict:
    """The baseline: a set of 13-word tuples, the same normalisation, a Python loop per document."""
    from thresher.decontam.ngrams import normalized_words

    start = _rss_mib()
    started = time.perf_counter()
    grams: set[tuple[str, ...]] = set()
    with open(args.benchmark, encoding="utf-8") as handle:
        for line in handle:
            words = normalized_words(json.loads(line)["question"])
            grams.update(tuple(words[j: j + N]) for j in range(len(words) - N + 1))
    build = time.perf_counter() - started
    growth = _peak_rss_mib() - start
    texts = corpus(Path(args.benchmark), args.docs)
    best, overlaps = float("inf"), []
    for _ in range(3):
        started = time.perf_counter()
        overlaps, coverages = [], []
        for text in texts:
            words = normalized_words(text)
            hits = [j for j in range(len(words) - N + 1) if tuple(words[j: j + N]) in grams]
            covered = {j + k for j in hits for k in range(N)}
            overlaps.append(len(hits))
            coverages.append(len(covered) / len(words) if words else 0.0)
        best = min(best, time.perf_counter() - started)
    return {"build_seconds": build, "ngrams": len(grams), "docs_per_s": len(texts) / best,
            "overlap_sum": sum(overlaps), "matched_docs": sum(o > 0 for o in overlaps), "peak_rss_mib": _peak_rss_mib(),
            "growth_mib": growth}


WORKERS = {"build": worker_build, "score": worker_score, "naive": worker_naive}


def run_worker(kind: str, **options) -> dict:
    argv = [sys.executable, __file__, "--worker", kind]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--naive-max", type=int, default=10_000_000, help="skip the naive side above this size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--benchmark")
    parser.add_argument("--cache")
    args = parser.parse_args()
    if args.worker:
        _pin()
        print(json.dumps(WORKERS[args.worker](args)))
        return

    print(f"one core each; corpus: {args.docs} C4 pages (tests/data, repeated), every 10th with a benchmark item; "
          f"seed {args.seed}; build memory = peak RSS of the build above the process's RSS before it")
    print("| benchmark n-grams | side | index build s | build memory MiB | index MiB | docs/s | matched docs |\n"
          "|---|---|---|---|---|---|---|")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="decontam-bench-") as tmp:
        for size in args.sizes:
            benchmark = Path(tmp) / f"synthetic-{size}.jsonl"
            write_benchmark(benchmark, size, args.seed)
            cache = Path(tmp) / f"cache-{size}"
            build = run_worker("build", benchmark=benchmark, cache=cache, docs=args.docs)
            score = run_worker("score", benchmark=benchmark, cache=cache, docs=args.docs)
            print(f"| {build['ngrams']:,} | thresher decontam@1 | {build['seconds']:.1f} | {build['growth_mib']:.0f} | "
                  f"{build['ngrams'] * 8 / 2**20:.0f} | {score['docs_per_s']:,.0f} | {score['matched_docs']} |")
            if size <= args.naive_max:
                naive = run_worker("naive", benchmark=benchmark, docs=args.docs)
                print(f"| {naive['ngrams']:,} | naive set of tuples | {naive['build_seconds']:.1f} | "
                      f"{naive['growth_mib']:.0f} | - | {naive['docs_per_s']:,.0f} | {naive['matched_docs']} |")
                if (naive["overlap_sum"], naive["matched_docs"]) != (score["overlap_sum"], score["matched_docs"]):
                    sys.exit(f"the two sides disagree: {naive} vs {score}")
                ratios.append((size, score["docs_per_s"] / naive["docs_per_s"],
                               naive["build_seconds"] / build["seconds"],
                               naive["growth_mib"] / max(build["growth_mib"], 1.0)))
    for size, speed, build_speed, memory in ratios:
        print(f"{size:,} n-grams: scoring {speed:.1f}x the naive docs/s; index build {build_speed:.2f}x its speed; "
              f"naive build uses {memory:.1f}x the memory")


if __name__ == "__main__":
    main()
