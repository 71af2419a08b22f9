"""DSIR throughput and memory against the reference `data-selection` 1.0.3, same data, same run,
one core each (every contender runs in its own subprocess pinned to one CPU, which also gives its
peak RSS).

Corpora (real text from ../shared/data, said again in the output):
- "c4 x N": the 200 C4 sample documents repeated with edits (each copy swaps two words), N docs in
  all; repetition inflates volume, not variety, which flatters thresher's n-gram memo caches;
- "distinct": the 200 C4 documents + 479 Wikipedia chunks, nothing repeated: the caches' worst case.
The target is Wikipedia: the chunks of wikipedia_sample.txt articles 0-14.

Phases. reference: fit_importance_estimator('auto'), compute_importance_weights() (featurize +
weight, reading the JSONL), resample(k, top_k=False). thresher: fit_dsir, weights through the
Scorer contract (score_shard: Parquet in, sidecar Parquet out), select_dsir (Gumbel top-k), on a
run ingested beforehand in its own process (thresher's ingest, JSONL -> Parquet, is a separate
stage the reference does not have; its time is reported and added in a third ratio). The
headline ratio is featurize + weight docs/s.

    python bench/dsir_throughput.py [--docs 5000] [--k 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import SHARED_DATA, c4_sample  # noqa: E402

CPU = sorted(os.sched_getaffinity(0))[-1]


def _wiki_chunks(articles: range, min_words: int = 150) -> list[str]:
    """Articles of wikipedia_sample.txt (one per line, paragraph breaks lost) cut at sentence ends
    into chunks of at least `min_words` words (as tests/dsir/mixture.py does)."""
    lines = [line for line in (SHARED_DATA / "wikipedia_sample.txt").read_text(encoding="utf-8").split("\n")
             if line.strip()]
    sentence_end = re.compile(r"(?<=[.!?])(?=[A-Z])|(?<=[.!?])\s+")
    chunks = []
    for index in articles:
        current, words = [], 0
        for sentence in filter(str.strip, sentence_end.split(lines[index])):
            current.append(sentence.strip())
            words += len(sentence.split())
            if words >= min_words:
                chunks.append(" ".join(current))
                current, words = [], 0
    return chunks


def _write_jsonl(path: Path, texts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}) + "\n")
    return path


def c4_repeated(n_docs: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = c4_sample()
    out = []
    for i in range(n_docs):
        words = texts[i % len(texts)].split(" ")
        if i >= len(texts):
            a, b = rng.randrange(len(words)), rng.randrange(len(words))
            words[a], words[b] = words[b], words[a]
        out.append(" ".join(words))
    return out


# -- workers (run in a child process) --------------------------------------------------------------


def _pin() -> None:
    os.sched_setaffinity(0, {CPU})


def _peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: on Linux the latter survives
    exec, so a child would report its parent's peak whenever that is larger."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker_reference(raw: str, target: str, work: str, k: int) -> dict:
    _pin()
    from data_selection import HashedNgramDSIR

    timings = {}
    started = time.perf_counter()
    dsir = HashedNgramDSIR([raw], [target], cache_dir=f"{work}/cache", num_proc=1)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    timings["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    dsir.compute_importance_weights()
    timings["featurize+weight"] = time.perf_counter() - started
    started = time.perf_counter()
    dsir.resample(out_dir=f"{work}/out", num_to_sample=k, cache_dir=None, top_k=False)
    timings["select"] = time.perf_counter() - started
    return {"timings": timings, "peak_rss_mib": _peak_rss_mib()}


def worker_ingest(raw: str, target: str, work: str, k: int) -> dict:
    """thresher's ingest (JSONL -> the run's Parquet), which DSIR reads; its own process so that
    its memory is not counted as DSIR's."""
    _pin()
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from thresher.config import IngestConfig, InputSpec
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.readers import discover_shards
    from thresher.storage.run_dir import RunDir

    started = time.perf_counter()
    run = RunDir(f"{work}/run")
    run.init()
    spec = InputSpec(paths=[raw], format="jsonl")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    return {"timings": {"ingest": time.perf_counter() - started}, "peak_rss_mib": _peak_rss_mib()}


def worker_thresher(raw: str, target: str, work: str, k: int) -> dict:
    _pin()
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from thresher.config import InputSpec
    from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
    from thresher.dsir.fit import fit_dsir, save_fit
    from thresher.dsir.resample import select_dsir
    from thresher.dsir.weights import DsirScorer
    from thresher.scorers.apply import score_shard
    from thresher.storage.catalog import build_catalog
    from thresher.storage.run_dir import RunDir

    timings = {}
    run = RunDir(f"{work}/run")
    config = DsirConfig(targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[target])])])
    started = time.perf_counter()
    fitted = fit_dsir(run, config)
    save_fit(run, fitted)
    timings["fit"] = time.perf_counter() - started
    scorer = DsirScorer.from_fit(fitted)
    started = time.perf_counter()
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    timings["featurize+weight"] = time.perf_counter() - started
    started = time.perf_counter()
    build_catalog(run)
    select_dsir(run, fitted, DsirSelection(name="bench", k=k, seed=0, random_baseline=False))
    timings["select"] = time.perf_counter() - started
    return {"timings": timings, "peak_rss_mib": _peak_rss_mib()}


WORKERS = {"reference": worker_reference, "ingest": worker_ingest, "thresher": worker_thresher}


def run_worker(name: str, raw: Path, target: Path, work: Path, k: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, __file__, "--worker", name, str(raw), str(target), str(work), str(k)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(label: str, texts: list[str], target: Path, tmp: Path, k: int, repeat: int) -> dict:
    raw = _write_jsonl(tmp / f"{label}.jsonl", texts)
    n = len(texts)
    print(f"\ncorpus {label}: {n:,} docs, {raw.stat().st_size / 2**20:.1f} MiB JSONL; target {target.name}; "
          f"k = {k}; one core (CPU {CPU}) per contender; {repeat} round(s), contenders alternating")
    rounds = []
    for r in range(repeat):
        work = tmp / f"{label}-{r}"
        ingest = run_worker("ingest", raw, target, work / "thresher", k)
        ours = run_worker("thresher", raw, target, work / "thresher", k)
        theirs = run_worker("reference", raw, target, work / "reference", k)
        rounds.append({"ingest": ingest, "thresher": ours, "reference": theirs})

    def rate(result: dict, phase: str) -> float:
        return n / result["timings"][phase]

    def span(values: list[float], fmt: str = ",.0f") -> str:
        return f"{min(values):{fmt}}" if len(values) == 1 else f"{min(values):{fmt}}-{max(values):{fmt}}"

    for name in ("reference", "thresher"):
        fw = [rate(r[name], "featurize+weight") for r in rounds]
        total = [n / sum(r[name]["timings"].values()) for r in rounds]
        phases = ", ".join(f"{phase} {span([r[name]['timings'][phase] for r in rounds], '.2f')} s"
                           for phase in rounds[0][name]["timings"])
        rss = span([r[name]["peak_rss_mib"] for r in rounds])
        print(f"  {name:>9}: featurize+weight {span(fw):>13} docs/s | fit+weight+select {span(total):>11} docs/s "
              f"| {phases} | peak RSS {rss} MiB")
    ingest_s = [r["ingest"]["timings"]["ingest"] for r in rounds]
    print(f"  {'(ingest)':>9}: thresher's ingest into Parquet {span(ingest_s, '.2f')} s, "
          f"peak RSS {span([r['ingest']['peak_rss_mib'] for r in rounds])} MiB (a separate stage)")
    ratio = [r["reference"]["timings"]["featurize+weight"] / r["thresher"]["timings"]["featurize+weight"]
             for r in rounds]
    ratio_all = [sum(r["reference"]["timings"].values()) / sum(r["thresher"]["timings"].values()) for r in rounds]
    ratio_ingest = [sum(r["reference"]["timings"].values())
                    / (sum(r["thresher"]["timings"].values()) + r["ingest"]["timings"]["ingest"]) for r in rounds]
    print(f"  thresher / reference: featurize+weight {span(ratio, '.1f')}x, "
          f"fit+weight+select {span(ratio_all, '.1f')}x, with thresher's ingest added {span(ratio_ingest, '.1f')}x")
    return {"label": label, "docs": n, "rounds": rounds, "ratio_featurize_weight": ratio,
            "ratio_end_to_end": ratio_all, "ratio_with_ingest": ratio_ingest}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, raw, target, work, k = sys.argv[2:7]
        print(json.dumps(WORKERS[name](raw, target, work, int(k))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=5000, help="documents of the repeated C4 corpus")
    parser.add_argument("--k", type=int, default=500, help="documents to select")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per corpus (the machine may be shared)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        target = _write_jsonl(tmp / "wiki_target.jsonl", _wiki_chunks(range(0, 15)))
        results = [
            compare(f"c4 x {args.docs}", c4_repeated(args.docs), target, tmp, args.k, args.repeat),
            compare("distinct", c4_sample() + _wiki_chunks(range(15, 30)), target, tmp, min(args.k, 200),
                    args.repeat),
        ]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
