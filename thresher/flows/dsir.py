"""The DSIR flows: fit -> weight -> select (+ report), thin tasks over the plain functions of
`thresher.dsir`.

- fit: one task, cached under `fit_identity` (fit settings + the content identity of every shard
  and every target), result persisted in the run; a cached result whose Parquet file is gone is
  recomputed.
- weight: one task per shard, exactly the score stage's contract (`score_shard` into
  `scores/dsir@<version>/`), cached under score_cache_key, whose params hash contains the fit's
  content hash, so a new fit re-weights every shard and an unchanged one skips them all.
- select + report: not cached; they stream the weights once per target (cheap next to weighting)
  and are deterministic given the seed, so running them again rewrites the same selection.
"""

from __future__ import annotations

import time

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thresher.dsir.config import DsirConfig, DsirSelection
from thresher.dsir.fit import fit_dsir, fit_identity, fit_path, load_fit, point_latest, save_fit
from thresher.dsir.report import kl_summary_rows, selection_report, to_markdown
from thresher.dsir.resample import check_weights_current, select_dsir
from thresher.dsir.weights import DsirScorer
from thresher.flows.artifacts import artifact_key, score_summary
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, cached_task, map_cached
from thresher.flows.score import score_every_shard
from thresher.progress import stage_progress
from thresher.storage.catalog import build_catalog
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir

STAGE = "dsir"


@cached_task(name="dsir-fit", task_run_name="fit")
def dsir_fit_task(run_root: str, config: DsirConfig, cache_key: str) -> dict:
    run = RunDir(run_root)
    started = time.perf_counter()
    fitted = fit_dsir(run, config)
    save_fit(run, fitted, identity=cache_key)
    return {"fit_hash": fitted.fit_hash, "stats": fitted.stats, "skipped": False,
            "seconds": round(time.perf_counter() - started, 3)}


@task(name="dsir-select", cache_policy=NO_CACHE, task_run_name="select {selection.name}")
def dsir_select_task(run_root: str, fit_hash: str, selection: DsirSelection) -> dict:
    run = RunDir(run_root)
    fitted = load_fit(run, fit_hash)
    started = time.perf_counter()
    meta = select_dsir(run, fitted, selection)
    meta["seconds"] = round(time.perf_counter() - started, 3)
    return meta


@task(name="dsir-report", cache_policy=NO_CACHE, task_run_name="report {selection_meta[name]}")
def dsir_report_task(run_root: str, fit_hash: str, selection_meta: dict, max_docs: int) -> dict:
    run = RunDir(run_root)
    return selection_report(run, load_fit(run, fit_hash), selection_meta, max_docs=max_docs)


# -- steps (shared by the step flows and the end-to-end flow) ------------------------------------


def _fit(run: RunDir, config: DsirConfig) -> dict:
    key = fit_identity(run, config)
    [result] = map_cached(run, dsir_fit_task, [Job((str(run.root), config), key)], label="dsir fit",
                          rows=lambda r: r["stats"]["raw"]["docs"],
                          done=lambda job, result: _fit_done(run, job.cache_key, result["fit_hash"]))
    return result


def _fit_done(run: RunDir, key: str, fit_hash: str) -> bool:
    """The fit file a cached result names still carries `key`; if so it becomes the run's newest fit
    again (another fit may have been pointed at since)."""
    if read_cache_key(fit_path(run, fit_hash)) != key:
        return False
    point_latest(run, load_fit(run, fit_hash), identity=key)
    return True


def _weight(run: RunDir, fit_hash: str) -> dict:
    scorer = DsirScorer.from_fit(load_fit(run, fit_hash))
    stats = score_every_shard(run, [scorer], "dsir weight")
    build_catalog(run)
    summary = score_summary(stats)[0]
    return {**summary, "fit_hash": fit_hash, "shards_detail": sorted(stats, key=lambda s: s["shard_id"])}


def _select(run: RunDir, fit_hash: str, selection: DsirSelection) -> dict:
    with stage_progress(f"dsir select {selection.name}", 1) as bar:
        meta = dsir_select_task(str(run.root), fit_hash, selection)
        report = dsir_report_task(str(run.root), fit_hash, meta, selection.report_max_docs)
        bar.advance(meta["selected_rows"])
    build_catalog(run)
    _publish(run, meta, report)
    return {"selection": meta, "report": report}


def _publish(run: RunDir, meta: dict, report: dict) -> None:
    name = run.root.name
    create_markdown_artifact(
        to_markdown(report, meta), key=artifact_key(name, "dsir", meta["name"], "report"),
        description=f"DSIR selection {meta['name']} of {name}: target vs raw vs selected n-gram distributions",
    )
    rows = [{**row, "quota": t["quota"], "candidates": t["candidates"]}
            for row, t in zip(kl_summary_rows(report), meta["targets"])]
    create_table_artifact(rows, key=artifact_key(name, "dsir", meta["name"], "selection"),
                          description=f"DSIR selection {meta['name']}: counts and KL divergences per target")


# -- flows ----------------------------------------------------------------------------------------


@flow(name="thresher-dsir-fit", log_prints=True)
@writes_run("run_dir")
def dsir_fit_flow(run_dir: str, config: DsirConfig) -> dict:
    """Fit p_raw over the run and p_target per target; save under <run>/dsir/fits/."""
    run = RunDir(run_dir)
    run.stage_started(STAGE, step="fit")
    result = _fit(run, config)
    build_catalog(run)
    run.stage_finished(STAGE, step="fit", fit_hash=result["fit_hash"])
    return {"run_dir": str(run.root), "fit": result}


@flow(name="thresher-dsir-weight", log_prints=True)
@writes_run("run_dir")
def dsir_weight_flow(run_dir: str, fit_hash: str | None = None) -> dict:
    """Write every shard's log importance weights (the newest fit unless `fit_hash` is given)."""
    run = RunDir(run_dir)
    fit_hash = load_fit(run, fit_hash).fit_hash  # fails here, before any task, if there is no such fit
    run.stage_started(STAGE, step="weight", fit_hash=fit_hash)
    weights = _weight(run, fit_hash)
    run.stage_finished(STAGE, step="weight", fit_hash=fit_hash)
    return {"run_dir": str(run.root), "weights": weights}


@flow(name="thresher-dsir-select", log_prints=True)
@writes_run("run_dir")
def dsir_select_flow(run_dir: str, selection: DsirSelection, fit_hash: str | None = None) -> dict:
    """Select documents by their weights into selections/<name>/ and publish the report."""
    run = RunDir(run_dir)
    fitted = load_fit(run, fit_hash)  # fail before any task: no such fit, or weights of another fit
    check_weights_current(run, DsirScorer.from_fit(fitted))
    fit_hash = fitted.fit_hash
    run.stage_started(STAGE, step="select", fit_hash=fit_hash, selection=selection.name)
    result = _select(run, fit_hash, selection)
    run.stage_finished(STAGE, step="select", fit_hash=fit_hash, selection=selection.name)
    return {"run_dir": str(run.root), **result}


@flow(name="thresher-dsir", log_prints=True)
@writes_run("run_dir")
def dsir_flow(run_dir: str, config: DsirConfig) -> dict:
    """DSIR end to end: fit, weight every shard, and select when `config.selection` is set."""
    run = RunDir(run_dir)
    if not run.data_parts():
        raise ValueError(f"{run.root} has no documents or instructions: run `thresher ingest` first")
    run.stage_started(STAGE, step="all", config_hash=config.fit_config_hash())
    fit = _fit(run, config)
    weights = _weight(run, fit["fit_hash"])
    out = {"run_dir": str(run.root), "fit": fit, "weights": weights}
    if config.selection is not None:
        out.update(_select(run, fit["fit_hash"], config.selection))
    else:
        build_catalog(run)
    run.stage_finished(
        STAGE, step="all", fit_hash=fit["fit_hash"],
        weights={k: weights[k] for k in ("scorer", "shards", "shards_skipped", "rows")},
        selection=None if config.selection is None else {
            "name": config.selection.name, "selected_rows": out["selection"]["selected_rows"],
            "kl": kl_summary_rows(out["report"])},
    )
    return out
