"""The `judge` flow: SLM judges (and IFD) over the shards of the table each reads, into versioned
sidecar tables, with per-judge statistics and score histograms as Prefect artifacts; and the
`judge-calibrate` flow.

Judges differ from the generic score flow in three ways: each reads its own table (instruction
judges `instructions/`, the educational-value judge `documents/`), reads more than `text`, and
caches every judgment under `<run>/judge_cache/`, so a re-run (or a run whose shards changed only
partly) never asks the model twice.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from thresher.config import ScorerSpec
from thresher.flows.artifacts import artifact_key
from thresher.flows.mapping import cached_task
from thresher.flows.score import score_every_shard
from thresher.judges.config import DEFAULT_JUDGES, CalibrationConfig
from thresher.judges.report import histogram_markdown, score_histogram
from thresher.judges.runner import JUDGE_STAT_KEYS, build_judge_scorer, judge_shard
from thresher.scorers.base import scorer_key
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


@cached_task(name="judge-shard", task_run_name="{table}/{shard_id}")
def judge_shard_task(run_root: str, judge, table: str, shard_id: str, cache_key: str) -> dict:
    return judge_shard(RunDir(run_root), judge, table, shard_id)


def judge_summary(stats: list[dict]) -> list[dict]:
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
    for entry in by_judge.values():
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
def judge_flow(run_dir: str, judges: list[ScorerSpec] | None = None) -> dict:
    """Run each judge over every shard of the table it reads."""
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run.root} is not a thresher run directory (no run.json)")
    built = [build_judge_scorer(spec.name, spec.params, run=run) for spec in (judges or list(DEFAULT_JUDGES))]
    run.stage_started("judge", judges=[scorer_key(j) for j in built])
    stats: list[dict] = []
    for judge in built:
        for result in score_every_shard(run, [judge], "judge", task_=judge_shard_task):
            if result["skipped"]:  # a cached task result describes the run that computed it
                result = {**result, **{k: 0 for k in JUDGE_STAT_KEYS}}
            stats.append(result)
    summary = judge_summary(stats)
    build_catalog(run)
    publish_judge(run, built, summary)
    run.stage_finished("judge", summary=summary)
    return {"run_dir": str(run.root), "judges": summary}


@flow(name="thresher-judge-calibrate", log_prints=True)
def calibrate_flow(run_dir: str, judge: ScorerSpec, name: str, labels_path: str | None = None,
                   label_column: str = "label", degraded: int | None = None, sample: int = 200, seed: int = 0,
                   positive_threshold: float | None = None) -> dict:
    from thresher.judges.calibrate import calibrate_judge, markdown, summary_json

    config = CalibrationConfig(name=name, labels_path=labels_path, label_column=label_column, degraded=degraded,
                               sample=sample, seed=seed, positive_threshold=positive_threshold)
    run = RunDir(run_dir)
    built = build_judge_scorer(judge.name, judge.params, run=run)
    result, paths = calibrate_judge(run, built, **config.model_dump())
    build_catalog(run)
    create_markdown_artifact(markdown(result), key=artifact_key(run.root.name, "judge-calibration", name),
                             description=f"calibration of {built.name} on {result.reference}")
    print(summary_json(result))
    return {"calibration": result, "paths": {k: str(v) for k, v in paths.items()}}
