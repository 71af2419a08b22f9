"""DSIR throughput and memory against the reference `data-selection` 1.0.3, same data, same run,
one core each (every contender runs in its own subprocess pinned to one CPU, which also gives its
peak RSS).

Corpora (real text from ../shared/data, said again in the output):
- "c4 x N": the 200 C4 sample documents repeated with edits (each copy swaps two words), N docs in
  all; repetition inflates volume, not variety, which flatters thresher's n-gram memo caches;
- "distinct": the 200 C4 documents + 479 Wikipedia chunks, nothing repeated: the caches' worst case.
The target is Wikipedia: the chunks of wikipedia_sample.txt articles 0-14.

Peak RSS is the whole process's, and each phase's own (VmHWM restarted at every phase boundary;
imports count in the phase that first needs them: fit for both, DuckDB in thresher's select).

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


def _reset_peak_rss() -> bool:
    """Start VmHWM afresh at the current RSS (Linux: clear_refs 5), so that each phase's own peak
    can be read; the process's peak is the largest of them. False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class _Phases:
    """Wall time and peak RSS of consecutive phases of one process (imports count in the first)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self._started = time.perf_counter()

    def start_clock(self) -> None:
        """Time from here (imports take memory in their phase, not time: the fit's clock starts after them)."""
        self._started = time.perf_counter()

    def end(self, name: str) -> None:
        self.timings[name] = time.perf_counter() - self._started
        self.peaks[name] = _peak_rss_mib()
        _reset_peak_rss()
        self._started = time.perf_counter()

    def result(self) -> dict:
        return {"timings": self.timings, "peak_rss_mib": max(self.peaks.values()), "phase_peak_rss_mib": self.peaks}


def worker_reference(raw: str, target: str, work: str, k: int) -> dict:
    _pin()
    phases = _Phases()
    from data_selection import HashedNgramDSIR

    phases.start_clock()
    dsir = HashedNgramDSIR([raw], [target], cache_dir=f"{work}/cache", num_proc=1)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    phases.end("fit")
    dsir.compute_importance_weights()
    phases.end("featurize+weight")
    dsir.resample(out_dir=f"{work}/out", num_to_sample=k, cache_dir=None, top_k=False)
    phases.end("select")
    return phases.result()


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
    """thresher's fit, weights and selection, each phase importing what it needs, as the CLI's
    separate commands do (weighting never loads DuckDB; selecting queries the catalog with it)."""
    _pin()
    phases = _Phases()
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from thresher.config import InputSpec
    from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
    from thresher.dsir.fit import fit_dsir, save_fit
    from thresher.dsir.weights import DsirScorer
    from thresher.scorers.apply import score_shard
    from thresher.storage.run_dir import RunDir

    run = RunDir(f"{work}/run")
    config = DsirConfig(targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[target])])])
    phases.start_clock()
    fitted = fit_dsir(run, config)
    save_fit(run, fitted)
    scorer = DsirScorer.from_fit(fitted)
    phases.end("fit")
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    phases.end("featurize+weight")
    from thresher.dsir.resample import select_dsir  # DuckDB: its import time counts here, as its memory
    from thresher.storage.catalog import build_catalog

    build_catalog(run)
    select_dsir(run, fitted, DsirSelection(name="bench", k=k, seed=0, random_baseline=False))
    phases.end("select")
    return phases.result()


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
        phase_rss = ", ".join(f"{phase} {span([r[name]['phase_peak_rss_mib'][phase] for r in rounds])}"
                              for phase in rounds[0][name]["phase_peak_rss_mib"])
        print(f"  {name:>9}: featurize+weight {span(fw):>13} docs/s | fit+weight+select {span(total):>11} docs/s "
              f"| {phases} | peak RSS {rss} MiB ({phase_rss})")
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
