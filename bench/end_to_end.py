"""End to end on one core: thresher's web recipe (ingest -> heuristics -> langid -> dedup -> DSIR ->
selection) as the commands a user runs, against datatrove 0.10.1's pipeline doing the work it has a
counterpart for (its Gopher quality, Gopher repetition, C4 quality and FineWeb quality filters, then
its four MinHash stages), on the same documents.

Corpus (bench/corpus.py `write_web_mix`): --docs C4-style JSON lines, gzip, drawn from real text:
60 % the 200-page C4 sample, 20 % the ~1,500 WikiText-2 paragraphs (Wikipedia), 15 % pieces of the
UDHR in ~390 languages (for language id), each copy after a source's first with two words swapped
(near duplicates), and 5 % byte-exact copies of an earlier document (exact duplicates).

thresher: every stage is a separate `.venv/bin/thresher` command (ingest, score -s heuristics,
score -s langid, dedup, dsir fit/weight/select, select), then `thresher curate` over the same stages
as ONE command (the full web recipe; and the comparable recipe: heuristics + dedup only). Each set
runs twice: with a temporary Prefect server per command (Prefect's default when no API is set) and
with one background server (`thresher server start`, started once and timed apart, stopped at the
end). Stages use DedupConfig's defaults: 112 permutations = 14 bands x 8 rows, word 5-grams; a
thread task runner with one worker. PREFECT_HOME is a fresh folder of the work dir (its database
is created before any timing), so no server of another user on this machine is picked up.

datatrove: one pinned process per stage, LocalPipelineExecutor(tasks=1, workers=1):
  filters     JsonlReader -> GopherQuality -> GopherRepetition -> C4Quality -> FineWebQuality ->
              JsonlWriter; a document goes to the next filter only while kept (datatrove computes less
              than thresher, which computes every signal of every document and filters in SQL later).
              Its LanguageFilter is left out: it needs the `fasttext` package and downloads lid.176.bin.
  minhash     MinhashDedupSignature (over the whole corpus, as thresher's dedup) -> MinhashDedupBuckets
              (tasks = 14, one per band, run one after another) -> MinhashDedupCluster ->
              JsonlReader -> MinhashDedupFilter -> JsonlWriter; MinhashConfig() = 14 x 8, 5-grams,
              64-bit hashes (thresher's signatures are 32-bit).
thresher's langid, DSIR and final SQL selection have no counterpart in this pipeline: the table lists
them apart and gives the totals with and without them.

Measure: every command is a child process pinned to one CPU (--cpu; sched_setaffinity before exec,
so everything it starts, the temporary Prefect server included, shares that core). Wall clock;
docs/s/core = documents / wall seconds. Peak RSS: the larger of the process tree's summed RSS
(sampled every 0.1 s with psutil) and ru_maxrss of the waited-for tree (its largest process). The
background server is not in any command's tree: it runs on the same core, its RSS is given apart and
the CPU time it spends during a command counts as that command's (the CPU-time ratio; on a shared
machine it is steadier than wall clock). Needs the bench extra, and xxhash<4 (datatrove's MinHash
hashes str, which xxhash 4 refuses).

Run: `.venv/bin/python bench/end_to_end.py [--docs 100000] [--cpu N] [--keep] [--no-temporary-server]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

THRESHER = str(ROOT / ".venv" / "bin" / "thresher")
PREFECT = str(ROOT / ".venv" / "bin" / "prefect")
DT_STAGES = ("filters", "minhash-signatures", "minhash-buckets", "minhash-cluster", "minhash-filter")
SELECTION = {
    "name": "web-en-dedup", "table": "documents",
    "where": [
        {"name": "english", "sql": "lang = 'en' AND lang_score >= 0.65"},
        {"name": "gopher_length",
         "sql": "gopher_word_count BETWEEN 50 AND 100000 AND gopher_mean_word_length BETWEEN 3 AND 10"},
        {"name": "gopher_repetition",
         "sql": "rep_dup_line_frac <= 0.3 AND rep_dup_para_frac <= 0.3 AND rep_top_2gram_char_frac <= 0.2"},
        {"name": "not_duplicate", "sql": "NOT exact_is_duplicate AND NOT minhash_is_duplicate"},
    ],
}


@dataclass
class Measure:
    label: str
    cmd: list[str]
    wall: float
    cpu: float
    maxrss_mib: float
    tree_peak_mib: float
    rc: int
    log: Path

    @property
    def peak_mib(self) -> float:
        return max(self.maxrss_mib, self.tree_peak_mib)


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def _tree_cpu(proc) -> float:
    import psutil

    total = 0.0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def measured(label: str, cmd: list[str], cpu: int, cwd: Path, env: dict, logs: Path, server=None) -> Measure:
    """Run `cmd` pinned to `cpu` (it and all it starts); wall, CPU time and peak RSS of its tree. The CPU
    time the background server (a psutil.Process, when given) spends meanwhile counts as the command's."""
    import psutil

    server_cpu = _tree_cpu(server) if server else 0.0
    log = logs / (label.replace(" ", "_").replace("/", "-") + ".log")
    with open(log, "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        proc, peak = psutil.Process(child.pid), 0
        while True:
            # wait4, not Popen.wait: its rusage covers the child and every descendant it waited for.
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(proc))
            time.sleep(0.1)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu_s = usage.ru_utime + usage.ru_stime + (_tree_cpu(server) - server_cpu if server else 0.0)
    m = Measure(label, cmd, wall, cpu_s, usage.ru_maxrss / 1024, peak / 2**20, child.returncode, log)
    failure = f"  FAILED rc={m.rc} (log {log})" if m.rc else ""
    print(f"  {label:<34} {m.wall:8.1f} s  CPU {m.cpu:7.1f} s  peak {m.peak_mib:6.0f} MiB{failure}", flush=True)
    return m


# ---------------------------------------------------------------------------------------------------
# datatrove, one stage per process (run by this script with --datatrove-stage)


def datatrove_stage(stage: str, work: Path) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    config = MinhashConfig()  # 14 buckets x 8 hashes, 5-grams, seed 1: the setting thresher's dedup uses
    dt, tasks = work / "datatrove", 1

    def reader():
        return JsonlReader(str(work / "corpus"), glob_pattern="*.json.gz")

    if stage == "filters":
        pipeline = [reader(), GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
                    FineWebQualityFilter(), JsonlWriter(str(dt / "filtered"))]
    elif stage == "minhash-signatures":
        pipeline = [reader(), MinhashDedupSignature(str(dt / "signatures"), config=config)]
    elif stage == "minhash-buckets":
        pipeline, tasks = [MinhashDedupBuckets(str(dt / "signatures"), str(dt / "buckets"), config=config)], \
            config.num_buckets
    elif stage == "minhash-cluster":
        pipeline = [MinhashDedupCluster(str(dt / "buckets"), str(dt / "remove_ids"), config=config)]
    else:
        pipeline = [reader(), MinhashDedupFilter(str(dt / "remove_ids")), JsonlWriter(str(dt / "deduplicated"))]
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(dt / "logs" / stage)).run()


def _jsonl_rows(folder: Path) -> int:
    rows = 0
    for path in folder.glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows += sum(1 for _ in handle)
    return rows


# ---------------------------------------------------------------------------------------------------
# thresher


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _recipes(work: Path, corpus: Path, target: Path, k: int) -> dict[str, Path]:
    import yaml

    base = {"seed": 0, "inputs": [{"paths": [str(corpus)], "format": "c4"}], "dedup": {},
            "task_runner": {"kind": "threads", "workers": 1}}
    full = {**base, "scorers": [{"name": "heuristics"}, {"name": "langid"}],
            "dsir": {"targets": [{"name": "wiki", "inputs": [{"paths": [str(target)], "format": "text"}]}],
                     "selection": {"name": "dsir-wiki", "k": k}},
            "selections": [SELECTION]}
    comparable = {**base, "scorers": [{"name": "heuristics"}]}
    out = {}
    for name, recipe in (("full", full), ("comparable", comparable)):
        out[name] = work / f"recipe_{name}.yaml"
        out[name].write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    (work / "selection.yaml").write_text(yaml.safe_dump(SELECTION, sort_keys=False), encoding="utf-8")
    return out


def thresher_commands(run: str, target: Path, k: int) -> list[tuple[str, list[str]]]:
    return [
        ("ingest", [THRESHER, "ingest", run, "corpus/web_mix.json.gz", "--format", "c4"]),
        ("score -s heuristics", [THRESHER, "score", run, "-s", "heuristics"]),
        ("score -s langid", [THRESHER, "score", run, "-s", "langid"]),
        ("dedup", [THRESHER, "dedup", run]),
        ("dsir fit", [THRESHER, "dsir", "fit", run, "-t", f"wiki={target}"]),
        ("dsir weight", [THRESHER, "dsir", "weight", run]),
        ("dsir select", [THRESHER, "dsir", "select", run, "-n", "dsir-wiki", "-k", str(k)]),
        ("select", [THRESHER, "select", run, "selection.yaml"]),
    ]


def thresher_set(mode: str, work: Path, target: Path, k: int, cpu: int, env: dict, logs: Path,
                 recipes: dict[str, Path], server=None) -> dict[str, Measure]:
    import yaml

    out = {}
    for label, cmd in thresher_commands(f"run_{mode}", target, k):
        out[label] = measured(f"{mode} {label}", cmd, cpu, work, env, logs, server)
    for name, path in recipes.items():
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
        recipe.update(name=f"e2e-{name}-{mode}", run_dir=str(work / f"curate_{name}_{mode}"))
        run_recipe = work / f"recipe_{name}_{mode}.yaml"
        run_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        out[f"curate {name}"] = measured(f"{mode} curate {name}", [THRESHER, "curate", str(run_recipe)], cpu, work,
                                         env, logs, server)
    return out


def _dup_counts(run: Path) -> str:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    try:
        exact = ds.dataset(next(run.glob("scores/exact_dedup@*"))).to_table(columns=["exact_is_duplicate"])
        near = ds.dataset(next(run.glob("scores/minhash_dedup@*"))).to_table(columns=["minhash_is_duplicate"])
        dup = pc.or_(exact.column(0), near.column(0))
        selected = ds.dataset(run / "selections" / SELECTION["name"] / "selected.parquet").count_rows()
    except (StopIteration, OSError, ValueError) as exc:
        return f"(could not read the run: {exc})"
    return (f"{pc.sum(dup).as_py():,} duplicates marked (exact {pc.sum(exact.column(0)).as_py():,}, MinHash "
            f"{pc.sum(near.column(0)).as_py():,}); {selected:,} documents in the final selection")


# ---------------------------------------------------------------------------------------------------
# report


def _row(stage: str, n: int, ours: list[Measure], ours_temp: list[Measure] | None, theirs: list[Measure]) -> str:
    def cells(ms: list[Measure] | None) -> tuple[str, str, str, float, float]:
        if not ms:
            return "—", "—", "—", 0.0, 0.0
        wall = sum(m.wall for m in ms)
        return (f"{wall:,.1f}", f"{n / wall:,.0f}", f"{max(m.peak_mib for m in ms):,.0f}", wall,
                sum(m.cpu for m in ms))

    w, rate, rss, wall, cpu = cells(ours)
    w_temp, _, _, wall_temp, _ = cells(ours_temp)
    dw, drate, drss, dwall, dcpu = cells(theirs)
    ratio = cpu_ratio = "—"
    if wall and dwall:
        ratio = f"{dwall / wall:.1f}x" + (f" ({dwall / wall_temp:.1f}x)" if wall_temp else "")
        cpu_ratio = f"{dcpu / cpu:.1f}x"
    return f"| {stage} | {w} | {w_temp} | {rate} | {rss} | {dw} | {drate} | {drss} | {ratio} | {cpu_ratio} |"


def report(n: int, t: dict[str, Measure], temp: dict[str, Measure] | None, d: dict[str, Measure]) -> None:
    def pick(ms: dict[str, Measure] | None, *labels: str) -> list[Measure] | None:
        return None if ms is None else [ms[label] for label in labels]

    dedup_dt = [d[s] for s in DT_STAGES[1:]]
    comparable = ("ingest", "score -s heuristics", "dedup")
    extra = ("score -s langid", "dsir fit", "dsir weight", "dsir select", "select")
    print(f"\n{n:,} documents, one core each side. thresher columns: with a background Prefect server "
          "(the first), with a temporary server per command (the second); the ratio is datatrove's time over "
          "thresher's (with the temporary server in brackets); the CPU-time ratio (user + system of the command's "
          "tree and of the background server meanwhile) is the steadier one on a loaded machine.\n")
    print("| stage | thresher s | thresher s, temp. server | thresher docs/s/core | thresher peak RSS MiB "
          "| datatrove s | datatrove docs/s/core | datatrove peak RSS MiB | thresher faster by (wall) "
          "| (CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = [
        ("read + quality signals (ingest + score -s heuristics / reader -> 4 filters -> writer)",
         ("ingest", "score -s heuristics"), [d["filters"]]),
        ("MinHash dedup 14x8 (dedup / 4 MinHash stages)", ("dedup",), dedup_dt),
    ]
    for stage, labels, theirs in rows:
        print(_row(stage, n, pick(t, *labels), pick(temp, *labels), theirs))
    for stage in DT_STAGES[1:]:
        print(_row(f"  datatrove {stage}", n, [], None, [d[stage]]))
    everything_dt = [d[s] for s in DT_STAGES]
    print(_row("**total, comparable work**", n, pick(t, *comparable), pick(temp, *comparable), everything_dt))
    for label in extra:
        print(_row(f"{label} (thresher only)", n, pick(t, label), pick(temp, label), []))
    print(_row("**total, all stages** (datatrove: comparable work)", n, pick(t, *comparable, *extra),
               pick(temp, *comparable, *extra), everything_dt))
    print(_row("`curate`, heuristics + dedup, one command", n, pick(t, "curate comparable"),
               pick(temp, "curate comparable"), everything_dt))
    print(_row("`curate`, the whole web recipe, one command", n, pick(t, "curate full"), pick(temp, "curate full"),
               everything_dt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="corpus size (default 100000)")
    parser.add_argument("--cpu", type=int, default=None, help="the CPU every command is pinned to (default: the last)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and print its path")
    parser.add_argument("--no-temporary-server", action="store_true",
                        help="skip the thresher runs with a temporary Prefect server per command")
    parser.add_argument("--skip-datatrove", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--datatrove-stage", choices=DT_STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_stage:
        datatrove_stage(args.datatrove_stage, Path(args.work))
        return

    from corpus import SHARED_DATA, write_web_mix

    cpu = args.cpu if args.cpu is not None else sorted(os.sched_getaffinity(0))[-1]
    work = Path(tempfile.mkdtemp(prefix="thresher-e2e-"))
    logs = work / "logs"
    logs.mkdir()
    target, k = SHARED_DATA / "wikipedia_sample.txt", max(1, args.docs // 10)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(work / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    failed: list[Measure] = []
    problems: list[str] = []
    kept: dict[str, int] = {}
    server_started = False
    try:
        counts = write_web_mix(work / "corpus" / "web_mix.json.gz", args.docs)
        print(f"corpus: {args.docs:,} documents from real text ({', '.join(f'{v:,} {k_}' for k_, v in counts.items())};"
              " repeats of a source's texts have two words swapped); DSIR target: the 30 Wikipedia articles of "
              f"{target.name}; k = {k:,}")
        print(f"work dir: {work}; every command pinned to CPU {cpu}; load average before: "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        recipes = _recipes(work, work / "corpus" / "web_mix.json.gz", target, k)
        measures: dict[str, dict[str, Measure]] = {}

        if not args.skip_datatrove:
            print("datatrove 0.10.1:", flush=True)
            measures["datatrove"] = {
                stage: measured(f"datatrove {stage}", [sys.executable, __file__, "--datatrove-stage", stage, "--work",
                                                       str(work)], cpu, work, env, logs) for stage in DT_STAGES}
            kept = {name: _jsonl_rows(work / "datatrove" / name) for name in ("filtered", "deduplicated")}
            # A stage that finds no input does not fail in datatrove: an empty output is a failure here.
            problems += [f"datatrove wrote no {name} documents" for name, rows in kept.items() if not rows]

        # The Prefect database is created once, untimed: a user's Prefect home has one already.
        subprocess.run([PREFECT, "server", "database", "upgrade", "-y"], env=env, capture_output=True, check=False)
        if not args.no_temporary_server:
            print("thresher, a temporary Prefect server per command:", flush=True)
            measures["temporary"] = thresher_set("temp", work, target, k, cpu, env, logs, recipes)
        print("thresher, one background Prefect server:", flush=True)
        start = measured("thresher server start", [THRESHER, "server", "start", "--port", str(_free_port())], cpu, work,
                         env, logs)
        server_started = start.rc == 0
        failed += [start] if start.rc else []
        server = _server_process(work / "prefect-home")
        measures["server"] = (thresher_set("server", work, target, k, cpu, env, logs, recipes, server)
                              if server_started else {})
        server_rss = _server_rss(work / "prefect-home")
    finally:
        if server_started:
            subprocess.run([THRESHER, "server", "stop"], env=env, cwd=work, capture_output=True, check=False)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    failed += [m for ms in measures.values() for m in ms.values() if m.rc]
    for m in failed:
        print(f"\nFAILED: {m.label} (exit {m.rc}): {' '.join(m.cmd)}\n"
              + m.log.read_text(encoding="utf-8", errors="replace")[-3000:])
    for problem in problems:
        print(f"\nFAILED: {problem}")
    if not failed and not problems and "datatrove" in measures and measures.get("server"):
        report(args.docs, measures["server"], measures.get("temporary"), measures["datatrove"])
        print(f"\nkept: datatrove's filters {kept['filtered']:,}, its MinHash filter {kept['deduplicated']:,} of "
              f"{args.docs:,}; thresher: {_dup_counts(work / 'run_server')}")
        print(f"background Prefect server: started in {start.wall:.1f} s (once), RSS at the end {server_rss:,.0f} MiB "
              "(not in the commands' peaks)")

    print("\ncommands (cwd = the work dir; each pinned with sched_setaffinity):")
    for group, ms in measures.items():
        for m in ms.values():
            print(f"  [{group}] {' '.join(m.cmd)}   # {m.wall:.1f} s, CPU {m.cpu:.1f} s, ru_maxrss {m.maxrss_mib:.0f} "
                  f"MiB, tree peak {m.tree_peak_mib:.0f} MiB")
    for name, path in recipes.items():
        print(f"\nrecipe {name} ({path.name}; run_dir and name set per run):\n{path.read_text(encoding='utf-8')}")
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed or problems or any(not ms for ms in measures.values()) else 0)


def _server_process(home: Path):
    """The background server `thresher server start` recorded (a psutil.Process), or None."""
    import psutil

    try:
        return psutil.Process(json.loads((home / "thresher-server.json").read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None


def _server_rss(home: Path) -> float:
    proc = _server_process(home)
    return _tree_rss(proc) / 2**20 if proc else float("nan")


if __name__ == "__main__":
    main()
