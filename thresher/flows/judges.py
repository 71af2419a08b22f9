"""The `judge` flow: SLM judges (and IFD) over the shards of the table each reads, into versioned
sidecar tables, with per-judge statistics and score histograms as Prefect artifacts; and the
`judge-calibrate` flow.

Judges differ from the generic score flow in three ways: each reads its own table (instruction
judges `instructions/`, the educational-value judge `documents/`), reads more than `text`, and
caches every judgment under `<run>/judge_cache/`, so a re-run (or a run whose shards changed only
partly) never asks the model twice.
"""

from __future__ import annotations

import time

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thresher.config import ScorerSpec
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, cached_task, map_cached, sidecar_done
from thresher.flows.score import score_every_shard
from thresher.judges.cache import remove_dead_writes
from thresher.judges.config import DEFAULT_JUDGES, CalibrationConfig
from thresher.judges.report import histogram_markdown, score_histogram
from thresher.judges.runner import JUDGE_STAT_KEYS, build_judge_scorer, judge_shard
from thresher.scorers.base import scorer_key
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


@cached_task(name="judge-shard", task_run_name="{table}/{shard_id}")
def judge_shard_task(run_root: str, judge, table: str, shard_id: str, cache_key: str) -> dict:
    return judge_shard(RunDir(run_root), judge, table, shard_id)


def judge_summary(stats: list[dict], wall_seconds: dict[str, float] | None = None) -> list[dict]:
    """Per judge: shards, rows, cache hits, model rows, and model rows per second of wall-clock time
    (`wall_seconds` by judge key; shards run concurrently, so the sum of their task seconds, kept as
    `task_seconds`, would understate the speed by the number of shards in flight)."""
    by_judge: dict[str, dict] = {}
    for s in stats:
        entry = by_judge.setdefault(s["scorer"], {"judge": s["scorer"], "table": s["table"], "shards": 0,
                                                  "shards_skipped": 0, "rows": 0, "seconds": 0.0,
                                                  **{k: 0 for k in JUDGE_STAT_KEYS}})
        entry["shards"] += 1
        entry["shards_skipped"] += s["skipped"]
        entry["rows"] += s["rows"]
        entry["seconds"] = round(entry["seconds"] + s["seconds"], 3)
        for k in JUDGE_STAT_KEYS:
            entry[k] += s.get(k, 0)
    for key, entry in by_judge.items():
        entry["task_seconds"] = entry["seconds"]
        if wall_seconds and key in wall_seconds:
            entry["seconds"] = round(wall_seconds[key], 3)
        entry["rows_per_second"] = round(entry["model_rows"] / entry["seconds"], 2) if entry["seconds"] else None
    return [by_judge[k] for k in sorted(by_judge)]


def publish_judge(run: RunDir, judges: list, summary: list[dict]) -> None:
    name = run.root.name
    create_table_artifact(summary, key=artifact_key(name, "judge-summary"),
                          description=f"Judges over {name}: rows, cache hits, rows sent to the model, parse failures")
    sections = [histogram_markdown(scorer_key(j), score_histogram(run, j)) for j in judges]
    create_markdown_artifact(f"# Judge scores of `{name}`\n\n" + "\n\n".join(sections) + "\n",
                             key=artifact_key(name, "judge-histograms"),
                             description="score histograms per judge (half-point buckets; IFD in 0.2 buckets)")


@flow(name="thresher-judge", log_prints=True)
@writes_run("run_dir")
def judge_flow(run_dir: str, judges: list[ScorerSpec] | None = None) -> dict:
    """Run each judge over every shard of the table it reads."""
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run.root} is not a thresher run directory (no run.json)")
    built = [build_judge_scorer(spec.name, spec.params, run=run) for spec in (judges or list(DEFAULT_JUDGES))]
    run.stage_started("judge", judges=[scorer_key(j) for j in built])
    for cache_root in sorted({str(j.cache_dir) for j in built if getattr(j, "cache_dir", None)}):
        remove_dead_writes(cache_root)
    stats: list[dict] = []
    wall_seconds: dict[str, float] = {}
    for judge in built:
        started = time.perf_counter()
        for result in score_every_shard(run, [judge], "judge", task_=judge_shard_task):
            if result["skipped"]:  # a cached task result describes the run that computed it
                result = {**result, **{k: 0 for k in JUDGE_STAT_KEYS}}
            stats.append(result)
        wall_seconds[scorer_key(judge)] = time.perf_counter() - started
    summary = judge_summary(stats, wall_seconds)
    build_catalog(run)
    publish_judge(run, built, summary)
    run.stage_finished("judge", summary=summary)
    return {"run_dir": str(run.root), "judges": summary}


@flow(name="thresher-judge-calibrate", log_prints=True)
@writes_run("run_dir")
def calibrate_flow(run_dir: str, judge: ScorerSpec, name: str, labels_path: str | None = None,
                   label_column: str = "label", degraded: int | None = None, sample: int = 200, seed: int = 0,
                   positive_threshold: float | None = None, fit: str | None = None,
                   holdout_fraction: float = 0.3) -> dict:
    """Judge a labelled sample and report agreement; with `fit` ("isotonic" or "logistic") also fit
    a calibration on it and write the calibrated scores of every judged row as a new sidecar."""
    from thresher.judges.calibrate import calibrate_judge, fit_calibration, fit_markdown, markdown, summary_json

    config = CalibrationConfig(name=name, labels_path=labels_path, label_column=label_column, degraded=degraded,
                               sample=sample, seed=seed, positive_threshold=positive_threshold)
    run = RunDir(run_dir)
    built = build_judge_scorer(judge.name, judge.params, run=run)
    result, paths = calibrate_judge(run, built, **config.model_dump())
    fitted = None
    if fit is not None:
        fitted = fit_calibration(run, built, name=name, method=fit, holdout_fraction=holdout_fraction, seed=seed,
                                 positive_threshold=positive_threshold)
    build_catalog(run)
    report = markdown(result) + ("\n" + fit_markdown(fitted) if fitted else "")
    create_markdown_artifact(report, key=artifact_key(run.root.name, "judge-calibration", name),
                             description=f"calibration of {built.name} on {result.reference}")
    print(summary_json(result))
    return {"calibration": result, "fit": fitted, "paths": {k: str(v) for k, v in paths.items()}}


@task(name="composite-fit", cache_policy=NO_CACHE, task_run_name="fit {config.name}")
def composite_fit_task(run_root: str, config) -> dict:
    from thresher.judges.composite import fit_composite

    return fit_composite(RunDir(run_root), config)


@cached_task(name="composite-shard", task_run_name="{config.name} {shard_id}")
def composite_shard_task(run_root: str, config, fitted: dict, shard_id: str, cache_key: str) -> dict:
    from thresher.judges.composite import write_composite_shard

    return write_composite_shard(RunDir(run_root), config, fitted, shard_id, cache_key)


@flow(name="thresher-judge-composite", log_prints=True)
@writes_run("run_dir")
def composite_flow(run_dir: str, config) -> dict:
    """Combine judge scores and cheap signals into one versioned score, scores/<name>@<version>/
    (see thresher.judges.composite): fit once over the table, then one task per shard."""
    from thresher.judges.composite import remove_stale_parts, shard_cache_key, summary_markdown

    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run.root} is not a thresher run directory (no run.json)")
    run.stage_started(f"composite:{config.name}", key=config.key)
    fitted = composite_fit_task(str(run.root), config)
    shard_ids = [shard for table, shard, _ in run.data_parts() if table == config.table]
    remove_stale_parts(run, config, shard_ids)
    jobs = [Job((str(run.root), config, fitted, shard), shard_cache_key(run, config, fitted, shard))
            for shard in shard_ids]
    shards = map_cached(run, composite_shard_task, jobs, label=f"composite {config.name}",
                        done=sidecar_done(run, config.key, 3))
    build_catalog(run)
    report = summary_markdown(config, fitted, shards)
    create_markdown_artifact(report, key=artifact_key(run.root.name, "composite", config.name),
                             description=f"composite score {config.key}")
    summary = {"key": config.key, "rows": sum(s["rows"] for s in shards),
               "scored": sum(s["scored"] for s in shards), "shards": len(shards)}
    run.stage_finished(f"composite:{config.name}", **summary)
    print(report)
    return {**summary, "fitted": fitted, "report": report}
