"""The `thresher` command line."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from thresher.console import console, fail, print_rows

app = typer.Typer(
    name="thresher",
    help="Curate LLM training data: stream corpora into a run directory, score every document, "
    "query the scores with DuckDB.",
    no_args_is_help=True,
    add_completion=False,
)

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]
LogLevel = Annotated[str, typer.Option("--log-level", help="Prefect log level on the console")]


def _prefect_logging(level: str) -> None:
    # Must happen before Prefect is imported: its settings are read at import.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level.upper())


_fail = fail
_print_rows = print_rows


def _print_ingest(result: dict) -> None:
    _print_rows("ingest", [{
        "shards": result["shards"], "skipped (cached)": result["shards_skipped"], "rows in": result["rows_in"],
        "written": result["rows_written"], "quarantined": result["rows_quarantined"],
    }])
    if result["quarantine_reasons"]:
        _print_rows("quarantine reasons", [{"reason": r, "rows": n} for r, n in result["quarantine_reasons"].items()])


def _print_score(result: dict) -> None:
    _print_rows("score", result["scorers"])


def _run_flow(fn, *args):
    from thresher.config import ConfigError
    from thresher.progress import show_progress
    from thresher.storage.readers import InputError

    try:
        with show_progress(console):
            return fn(*args)
    except (ConfigError, InputError, FileNotFoundError, ValueError) as exc:  # SelectionError is a ValueError
        _fail(str(exc))


@app.command()
def ingest(
    run_dir: RunDirArg,
    inputs: Annotated[list[str], typer.Argument(help="input files, globs or directories")],
    format: Annotated[str, typer.Option(help="auto|c4|fineweb|refinedweb|jsonl|parquet|alpaca|sharegpt")] = "auto",
    text_field: Annotated[str | None, typer.Option(help="text column for jsonl/parquet")] = None,
    url_field: Annotated[str | None, typer.Option(help="URL column for jsonl/parquet")] = None,
    max_doc_bytes: Annotated[int, typer.Option(help="quarantine documents larger than this")] = 2 << 20,
    batch_rows: Annotated[int, typer.Option(help="rows per Arrow batch / Parquet row group")] = 2048,
    log_level: LogLevel = "WARNING",
) -> None:
    """Stream INPUTS into RUN_DIR/documents (or instructions); bad rows go to RUN_DIR/quarantine."""
    _prefect_logging(log_level)
    from pydantic import ValidationError

    from thresher.config import IngestConfig, InputSpec
    from thresher.flows.ingest import ingest_flow

    try:
        spec = InputSpec(paths=inputs, format=format, text_field=text_field, url_field=url_field)
        config = IngestConfig(max_doc_bytes=max_doc_bytes, batch_rows=batch_rows)
    except ValidationError as exc:
        _fail(str(exc))
    result = _run_flow(ingest_flow, str(run_dir), [spec], config)
    _print_ingest(result)
    console.print(f"run directory: [bold]{result['run_dir']}[/]")


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="an ingested run directory")],
    scorer: Annotated[list[str] | None, typer.Option("--scorer", "-s", help="scorer name; repeatable")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run scorers over every shard of RUN_DIR into scores/<scorer>@<version>/ sidecar tables."""
    _prefect_logging(log_level)
    from thresher.config import DEFAULT_SCORERS, ScorerSpec
    from thresher.flows.score import score_flow

    specs = [ScorerSpec(name=n) for n in scorer] if scorer else list(DEFAULT_SCORERS)
    _print_score(_run_flow(score_flow, str(run_dir), specs))


@app.command()
def curate(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML: name, run_dir, inputs, ingest, scorers, seed")],
    log_level: LogLevel = "WARNING",
) -> None:
    """Run the end-to-end curate flow (ingest, score, catalog) described by RECIPE."""
    _prefect_logging(log_level)
    from thresher.config import load_recipe
    from thresher.flows.curate import curate_flow

    started = time.perf_counter()
    loaded = _run_flow(load_recipe, recipe)
    result = _run_flow(curate_flow, loaded)
    _print_ingest(result["ingest"])
    _print_score(result["score"])
    _print_dedup(result["dedup"])
    _print_dsir(result["dsir"])
    _print_judge(result.get("judge"))
    _print_embeddings(result.get("embeddings"))
    _print_selections(result["selections"])
    _print_augment(result.get("augment"))
    console.print(f"run directory: [bold]{result['run_dir']}[/]  ({time.perf_counter() - started:.1f} s)")


def _print_dedup(result: dict | None) -> None:
    if not result:
        return
    _print_rows("dedup", [
        {"table": table, "documents": t["documents"], "exact dups": t["exact_duplicates"],
         "near dups (MinHash)": t["minhash_duplicates"], "rate": f"{t['minhash_duplicate_rate']:.1%}",
         "clusters": t["minhash_clusters"]}
        for table, t in result["tables"].items()
    ])


def _print_dsir(result: dict | None) -> None:
    if not result:
        return
    from thresher.dsir.report import kl_summary_rows

    _print_rows("dsir", [{"fit": result["fit"]["fit_hash"], "weighted rows": result["weights"]["rows"],
                          "selection": (result.get("selection") or {}).get("name", "-"),
                          "selected": (result.get("selection") or {}).get("selected_rows", "-")}])
    if result.get("report"):
        keep = ("target", "selected_docs", "kl_target_selected", "kl_target_random", "kl_reduction_vs_random")
        _print_rows("dsir: KL(target || sample), lower is closer",
                    [{k: row.get(k) for k in keep} for row in kl_summary_rows(result["report"])])


def _print_judge(result: dict | None) -> None:
    if not result:
        return
    keep = ("judge", "rows", "not_sampled", "model_rows", "cache_hits", "parse_errors", "injection_flags",
            "rows_per_second")
    _print_rows("judges", [{k: j.get(k) for k in keep} for j in result["judges"]])


def _print_embeddings(result: dict | None) -> None:
    if not result:
        return
    for head in result.get("distill", []):
        _print_rows(f"distilled head {head['name']} (vs the judge)", [
            {"split": split, **{k: m.get(k) for k in ("rows", "spearman", "mae", "baseline_mae", "f1")}}
            for split, m in head["metrics"].items() if isinstance(m, dict)])
    for selection in result.get("diversity", []):
        _print_rows(f"diversity selection {selection['name']}",
                    [{k: v for k, v in selection.items() if isinstance(v, (int, float, str)) and k != "name"}])


def _print_augment(result: dict | None) -> None:
    if not result:
        return
    _print_rows(f"Evol-Instruct into {result['output_run']}", result["augment"]["rounds_table"])
    _print_selections(result.get("selections") or [])


def _print_selections(results: list[dict]) -> None:
    for result in results:
        rows = [{"step": s["step"], "rows": s["rows"]} for s in result["funnel"]]
        _print_rows(f"selection {result['name']} ({result['table']})",
                    rows + [{"step": "selected", "rows": result["selected_rows"]}])


@app.command()
def dedup(
    run_dir: Annotated[Path, typer.Argument(help="an ingested run directory")],
    config: Annotated[Path | None, typer.Option(
        help="YAML with DedupConfig fields (ngram, num_perm, bands, rows, threshold, seed, verify, survivor, "
             "prior_runs, …)")] = None,
    threshold: Annotated[float | None, typer.Option(help="target Jaccard; with --derive, picks bands x rows")] = None,
    derive: Annotated[bool, typer.Option(help="derive bands/rows from the threshold (datasketch's optimiser)")] = False,
    verify: Annotated[bool, typer.Option(help="drop candidate pairs below the threshold by exact Jaccard")] = False,
    prior_run: Annotated[list[Path] | None, typer.Option("--prior-run", help="dedup against an earlier run; "
                                                         "repeatable")] = None,
    seed: Annotated[int | None, typer.Option(help="MinHash seed")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Mark exact and MinHash near duplicates: dedup/ tables and scores/exact_dedup@1, minhash_dedup@1."""
    _prefect_logging(log_level)
    from thresher.config import load_yaml_model
    from thresher.dedup.config import DedupConfig
    from thresher.flows.dedup import dedup_flow

    base = _run_flow(load_yaml_model, config, DedupConfig) if config else DedupConfig()
    overrides: dict = {}
    if threshold is not None:
        overrides["threshold"] = threshold
    if derive:
        overrides.update(bands=None, rows=None)
    if verify:
        overrides["verify"] = True
    if prior_run:
        overrides["prior_runs"] = [str(p) for p in prior_run]
    if seed is not None:
        overrides["seed"] = seed
    try:
        settings = DedupConfig.model_validate({**base.model_dump(), **overrides})
    except ValueError as exc:
        _fail(str(exc))
    _print_dedup(_run_flow(dedup_flow, str(run_dir), settings))


@app.command()
def select(
    run_dir: Annotated[Path, typer.Argument(help="a scored run directory")],
    recipe: Annotated[Path, typer.Argument(help="selection recipe YAML: name, table, where, limit, order_by, seed")],
    log_level: LogLevel = "WARNING",
) -> None:
    """Apply a selection recipe to RUN_DIR: selections/<name>/ with the selected doc_ids and the funnel."""
    _prefect_logging(log_level)
    from thresher.config import load_selection_recipe
    from thresher.flows.select import select_flow

    loaded = _run_flow(load_selection_recipe, recipe)
    _print_selections(_run_flow(select_flow, str(run_dir), [loaded]))


@app.command()
def sql(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    query: Annotated[str | None, typer.Argument(help="SQL; omit for an interactive shell")] = None,
    max_rows: Annotated[int, typer.Option(help="rows to print at most")] = 50,
    output: Annotated[str, typer.Option("--output", "-o", help="table|csv|json")] = "table",
) -> None:
    """Query RUN_DIR's DuckDB catalog (read-only). `SELECT * FROM thresher_views` lists the views."""
    from thresher.sql_shell import print_result, run_shell
    from thresher.storage.catalog import open_catalog
    from thresher.storage.run_dir import RunDir

    try:
        con = open_catalog(RunDir(run_dir), read_only=True)
    except FileNotFoundError as exc:
        _fail(str(exc))
    with con:
        if query is None:
            run_shell(con, console, max_rows=max_rows)
            return
        import duckdb

        try:
            relation = con.sql(query)
        except duckdb.Error as exc:
            _fail(str(exc))
        print_result(relation, console, max_rows=max_rows, output=output)


@app.command()
def serve(
    prefect_yaml: Annotated[Path, typer.Option(help="the deployments file")] = Path("prefect.yaml"),
    only: Annotated[list[str] | None, typer.Option("--only", help="serve only this deployment; repeatable")] = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the scheduled deployments of prefect.yaml from this process (no work pool needed).

    Runs until interrupted; the Prefect UI (`prefect server start`) shows the deployments, their
    schedules and runs. For work-pool based deployments use `prefect deploy --all` instead."""
    _prefect_logging(log_level)
    from prefect import serve as prefect_serve

    from thresher.flows.deployments import load_deployments

    deployments = _run_flow(load_deployments, prefect_yaml, only)
    for deployment in deployments:
        console.print(f"serving [bold]{deployment.name}[/] {deployment.parameters}")
    prefect_serve(*deployments)


@app.command()
def scorers() -> None:
    """List the available scorers and the columns each writes."""
    from thresher.scorers.registry import available_scorers, build_scorer

    rows = []
    for name in available_scorers():
        scorer = build_scorer(name)
        columns = [f.name for f in scorer.output_schema if f.name != "doc_id"]
        rows.append({"scorer": f"{scorer.name}@{scorer.version}", "columns": ", ".join(columns)})
    _print_rows("scorers", rows)


@app.command()
def demo(
    run_dir: Annotated[Path, typer.Argument(help="where the demo run goes")] = Path("thresher-demo-run"),
    conversations: Annotated[int, typer.Option(help="ShareGPT conversations to take")] = 1500,
    log_level: LogLevel = "WARNING",
) -> None:
    """Curate the embedded demo corpus end to end (no network needed) and show how to query it."""
    _prefect_logging(log_level)
    from thresher.demo import run_demo

    started = time.perf_counter()
    result = _run_flow(run_demo, run_dir, conversations)
    _print_ingest(result["ingest"])
    _print_score(result["score"])
    _print_dedup(result["dedup"])
    _print_dsir(result["dsir"])
    _print_judge(result.get("judge"))
    _print_embeddings(result.get("embeddings"))
    _print_selections(result["selections"])
    _print_augment(result.get("augment"))
    console.print(f"\n[bold green]demo finished[/] in {time.perf_counter() - started:.1f} s")
    console.print(f"run directory: [bold]{result['run_dir']}[/]\n")
    # Show the command as the user can type it: a venv's script is not on PATH until activated.
    program = "thresher" if shutil.which("thresher") else sys.argv[0]
    console.print("Try:")
    for query_run, query in result["example_queries"]:
        shown = Path(run_dir) / Path(query_run).relative_to(result["run_dir"])  # as the user named the run
        console.print(f"  {program} sql {shown} \"{query}\"", soft_wrap=True, markup=False, highlight=False)


# Commands that live beside the stage they drive.
from thresher.dashboards.commands import dashboard as _dashboard  # noqa: E402
from thresher.dashboards.commands import report as _report  # noqa: E402
from thresher.dsir.cli import app as _dsir_app  # noqa: E402
from thresher.export.commands import export as _export  # noqa: E402

app.command("export")(_export)
app.add_typer(_dsir_app, name="dsir", help="DSIR importance resampling: fit, weight, select.")

from thresher.judges.cli import app as _judge_app  # noqa: E402

app.add_typer(_judge_app, name="judge", help="SLM judges and IFD: run, calibrate, measure prompt injection.")

from thresher.augment.cli import app as _augment_app  # noqa: E402
from thresher.embeddings.cli import app as _embeddings_app  # noqa: E402

app.add_typer(_embeddings_app, name="embeddings",
              help="Sentence embeddings: semantic dedup, diversity selection, judge distillation.")
app.add_typer(_augment_app, name="augment", help="Evol-Instruct augmentation: evolve, eliminate, answer, re-judge.")

from thresher import perplexity_commands as _perplexity  # noqa: E402

app.command("perplexity")(_perplexity.perplexity)
app.command("train-kenlm")(_perplexity.train_kenlm)
app.command("train-proxy")(_perplexity.train_proxy)
app.command("dashboard")(_dashboard)
app.command("report")(_report)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    app()
