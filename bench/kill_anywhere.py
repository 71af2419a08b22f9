"""Kill anywhere: SIGKILL `thresher curate` at K seeded points spread over every stage of a recipe with
dedup, DSIR, KenLM perplexity, a judge, embeddings (semantic dedup, distillation, a diversity
selection) and two Evol-Instruct rounds (whose evolved pairs are scored, judged, deduplicated and
selected in the augmented run), resume each run to its end, and compare every Parquet table with an
uninterrupted run's: the same rows, no doc_id lost or duplicated, no temporary file left.

Small real data (C4 pages with near-duplicate copies, Alpaca instructions, from tests/data) and tiny
real models trained here in seconds (a one-layer GPT-2 judges, evolves and answers; a KenLM trigram):
the behaviour measured is resumability, not quality (tests/kill.py has the recipe).

The reference run is watched (run.json, every 10 ms) for how long each stage runs; kill i of K aims
at stage i*S/K of S (every stage when K >= S), a uniform time into it (seeded), counted from the
moment the victim enters that stage, so start-up time does not move the point out of its stage.
Kill 0 is a control: a second uninterrupted run. One Prefect API serves every child.

    .venv/bin/python bench/kill_anywhere.py [--kills 20] [--seed 0] [--workdir DIR] [--keep]

Exit status 1 when any resumed run differs from the reference (or fails to resume).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import kill  # noqa: E402


def reference(root: Path, inputs: dict, models: dict, env: dict) -> tuple[dict, dict[str, float], float]:
    """The uninterrupted run: its tables, how long each stage ran, and its wall time."""
    recipe = kill.write_recipe(kill.kill_recipe(root / "reference", **inputs, models=models), root / "reference.yaml")
    started = time.monotonic()
    process = kill.start_curate(recipe, env, root / "reference.log")
    durations = kill.watch_stages(process, root / "reference")
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"the reference run failed (exit {process.returncode}); see {root / 'reference.log'}")
    return kill.run_tables(root / "reference"), durations, seconds


def one_kill(root: Path, n: int, stage: str | None, offset: float, inputs: dict, models: dict, env: dict,
             expected: dict) -> dict:
    """Kill a fresh run `offset` s into `stage` and resume it; `stage` None: a second uninterrupted run
    (the control: a difference there is non-determinism, not a resume bug)."""
    run_dir = root / f"kill-{n:02d}"
    recipe = kill.write_recipe(kill.kill_recipe(run_dir, **inputs, models=models), root / f"kill-{n:02d}.yaml")
    log = root / f"kill-{n:02d}.log"
    started = time.monotonic()
    hit = "(no kill)" if stage is None else kill.kill_in_stage(kill.start_curate(recipe, env, log), run_dir,
                                                                stage, offset)
    killed_after = time.monotonic() - started
    try:
        kill.finish_curate(recipe, env, log)
        problems = kill.differences(expected, kill.run_tables(run_dir))
        problems += [f"temporary file left: {p}" for p in kill.leftover_temp_files(run_dir)]
    except Exception as error:  # a resume that fails is a result of the harness, reported in its row
        problems = [f"resume failed: {str(error).splitlines()[0]}"]
    return {"n": n, "stage": stage or "(control)", "offset": offset, "hit": "(finished first)" if hit is None else hit,
            "killed_after": killed_after, "total": time.monotonic() - started, "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill points")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the runs (with --workdir)")
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    root = args.workdir or Path(tempfile.mkdtemp(prefix="kill-anywhere-"))
    root.mkdir(parents=True, exist_ok=True)
    data = REPO / "tests" / "data"
    try:
        with prefect_test_harness(server_startup_timeout=120):
            env = kill.child_env(PREFECT_API_URL.value())
            started = time.monotonic()
            inputs = {"instructions": kill.write_instructions(data, root / "inputs" / "instructions"),
                      "web": kill.write_web(data, root / "inputs" / "web")}
            models = kill.train_models(data, root / "models")
            print(f"inputs and models: {time.monotonic() - started:.1f} s")
            expected, durations, seconds = reference(root, inputs, models, env)
            print(f"reference run: {seconds:.1f} s, {len(expected)} tables; stages seen (s): "
                  + ", ".join(f"{s} {d:.2f}" for s, d in durations.items()))
            plan = kill.kill_plan(durations, args.kills, args.seed)
            print(f"kills: {args.kills}, seed: {args.seed}\n")
            print(f"{'kill':>4}  {'aimed at (stage + s)':<34} {'killed at':>9}  {'stage hit':<26} "
                  f"{'kill+resume':>11}  result")
            results = []
            for n, (stage, offset) in enumerate([(None, 0.0), *plan]):
                r = one_kill(root, n, stage, offset, inputs, models, env, expected)
                results.append(r)
                verdict = "resumed ok" if not r["problems"] else "; ".join(r["problems"])[:300]
                aim = r["stage"] + (f" +{offset:.2f}" if stage else "")
                print(f"{n:>4}  {aim:<34} {r['killed_after']:>8.1f}s  {r['hit']:<26} "
                      f"{r['total']:>10.1f}s  {verdict}", flush=True)
                if not args.keep:
                    shutil.rmtree(root / f"kill-{n:02d}", ignore_errors=True)
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    control, kills = results[0], results[1:]
    ok = sum(not r["problems"] for r in kills)
    print(f"\ncontrol (a second uninterrupted run): {'identical' if not control['problems'] else 'DIFFERS'}")
    print(f"kills survived: {ok}/{len(kills)}; stages hit: {', '.join(sorted({r['hit'] for r in kills}))}")
    mean = sum(r["total"] for r in kills) / max(len(kills), 1)
    print(f"reference run {seconds:.1f} s; mean kill+resume {mean:.1f} s")
    return 0 if ok == len(kills) and not control["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
