"""The classifier flow: train a fastText classifier, score every shard, then the run-wide percentile
sidecar; thin tasks over `thresher.classifier`.

- train: one task (not cached: seconds, deterministic for a seed, and its input is judge output that
  may change); its model directory is named by the model file's hash.
- score: one task per shard through the shared score task (`score_every_shard`), cached under the
  shard's content + classifier_<name>@1 + the scorer's parameters (the model hash among them).
- percentiles: one global task per classifier, cached under the cache keys of every score part.

Statistics go to run.json and to Prefect artifacts: the agreement report and the score quantiles.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thresher.classifier.config import ClassifierConfig, unique_names
from thresher.classifier.percentile import percentile_cache_key, percentiles_done, write_percentiles
from thresher.classifier.scorer import ClassifierScorer
from thresher.classifier.train import markdown, train
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, cached_task, map_cached
from thresher.flows.score import score_every_shard
from thresher.scorers.base import scorer_key
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


@task(name="classifier-train", cache_policy=NO_CACHE, task_run_name="classifier {config.name}")
def train_task(run_root: str, config: ClassifierConfig) -> dict:
    return train(RunDir(run_root), config)


@cached_task(name="classifier-percentiles", task_run_name="percentiles {table}")
def percentile_task(run_root: str, scorer: ClassifierScorer, table: str, cache_key: str) -> dict:
    stats = write_percentiles(RunDir(run_root), scorer, table)
    if stats["cache_key"] != cache_key:
        raise RuntimeError(f"cache key drift in percentiles of {scorer_key(scorer)}: {stats['cache_key']}")
    return stats


def score_and_bin(run: RunDir, scorer: ClassifierScorer, table: str) -> dict:
    """Score every `table` shard with `scorer`, rebuild the catalog, write the percentile sidecar."""
    scored = score_every_shard(run, [scorer], "classifier", table=table)
    job = Job((str(run.root), scorer, table), percentile_cache_key(run, scorer, table))
    (binned,) = map_cached(run, percentile_task, [job], label=f"percentiles {scorer.name}", one_at_a_time=True,
                           done=lambda j, _result: percentiles_done(run, scorer, table, j.cache_key))
    return {"scorer": scorer_key(scorer), "score_column": scorer.score_column,
            "percentile_column": f"{scorer.name}_pct", "scored_rows": sum(s["rows"] for s in scored),
            "shards": len(scored), "shards_skipped": sum(s["skipped"] for s in scored),
            "score_seconds": round(sum(s["seconds"] for s in scored), 3), "percentiles": binned}


def _publish(run: RunDir, result: dict) -> None:
    name = run.root.name
    create_markdown_artifact(markdown(result), key=artifact_key(name, "classifier", result["name"]),
                             description=f"classifier {result['name']}: held-out agreement with its labels")
    rows = [{"split": split, "rows": m["rows"], "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
             "roc_auc": m["roc_auc"], "spearman": m["spearman"],
             **{f"{cls}_{k}": c[k] for cls, c in m["classes"].items() for k in ("precision", "recall", "f1")}}
            for split, m in result["metrics"].items()]
    create_table_artifact(rows, key=artifact_key(name, "classifier", result["name"], "metrics"),
                          description=f"classifier_{result['name']}: agreement metrics per split")


def _run_classifiers(run: RunDir, configs: list[ClassifierConfig]) -> list[dict]:
    out = []
    for config in unique_names(list(configs)):
        result = train_task(str(run.root), config)
        if config.score_all:
            result["scoring"] = score_and_bin(run, ClassifierScorer(model=result["model_dir"]), config.table)
            build_catalog(run)
        _publish(run, result)
        out.append(result)
    build_catalog(run)
    return out


@flow(name="thresher-classifier", log_prints=True)
@writes_run("run_dir")
def classifier_flow(run_dir: str, configs: list[ClassifierConfig]) -> dict:
    """Train each classifier, score every row of its table with it, and bin the scores into percentiles."""
    run = RunDir(run_dir)
    if not run.data_parts():
        raise ValueError(f"{run.root} has no documents or instructions: run `thresher ingest` first")
    run.stage_started("classifier", classifiers=[c.name for c in configs])
    results = _run_classifiers(run, list(configs))
    run.stage_finished("classifier", classifiers={
        r["name"]: {"model_hash": r["model_hash"], "rows": r["rows"], "heldout": _headline(r["metrics"]["heldout"]),
                    "scored_rows": r.get("scoring", {}).get("scored_rows", 0)} for r in results})
    return {"run_dir": str(run.root), "classifiers": results}


@flow(name="thresher-classifier-score", log_prints=True)
@writes_run("run_dir")
def classifier_score_flow(run_dir: str, model: str, table: str = "documents") -> dict:
    """Score every `table` row with an existing model (e.g. one trained on another run) + percentiles."""
    run = RunDir(run_dir)
    scorer = ClassifierScorer(model=model)
    run.stage_started("classifier_score", scorer=scorer_key(scorer), model_hash=scorer.model_hash)
    result = score_and_bin(run, scorer, table)
    build_catalog(run)
    run.stage_finished("classifier_score", scorer=scorer_key(scorer), scored_rows=result["scored_rows"])
    return {"run_dir": str(run.root), "scoring": result}


def _headline(metrics: dict) -> dict:
    positive = metrics["classes"]["positive"]
    return {"rows": metrics["rows"], "positive_f1": positive["f1"], "macro_f1": metrics["macro_f1"],
            "roc_auc": metrics["roc_auc"], "spearman": metrics["spearman"]}
