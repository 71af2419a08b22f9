"""`thresher dsir`: fit, weight and select with DSIR from the command line.

    thresher dsir fit RUN_DIR --target wiki=wiki.jsonl           (or --config dsir.yaml)
    thresher dsir weight RUN_DIR
    thresher dsir select RUN_DIR --name wiki_like -k 10000 [--where "lang = 'en'"]

Each command runs its Prefect flow (cached, resumable, artifacts) and prints a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail, print_rows
from thresher.cli.run import LogLevel, prefect_logging, run_flow

app = typer.Typer(
    name="dsir",
    help="Data selection with importance resampling (Xie et al. 2023): hashed n-gram importance weights "
    "toward target text, then Gumbel top-k selection.",
    no_args_is_help=True,
    add_completion=False,
)

RunDirArg = Annotated[Path, typer.Argument(help="an ingested run directory")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="DSIR config YAML (targets, fit, selection)")]
FitOpt = Annotated[str | None, typer.Option("--fit", help="fit hash to use; default: the run's newest fit")]




def _pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    out = []
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            fail(f"{option} takes NAME=VALUE, got {value!r}")
        out.append((name.strip(), rest))
    return out






def _print_fit(fit: dict) -> None:
    stats = fit["stats"]
    rows = [{"distribution": "raw (this run)", "docs": stats["raw"]["docs"], "n-grams": stats["raw"]["features"],
             "whole source": stats["raw"]["exhausted"], "quarantined": "-"}]
    rows += [{"distribution": f"target {name}", "docs": t["docs"], "n-grams": t["features"],
              "whole source": t["exhausted"], "quarantined": t["quarantined_rows"]}
             for name, t in stats["targets"].items()]
    print_rows(f"dsir fit {fit['fit_hash']}" + (" (cached)" if fit.get("skipped") else ""), rows)


def _print_weights(weights: dict) -> None:
    print_rows(f"dsir weights (fit {weights['fit_hash']})", [
        {k: weights[k] for k in ("scorer", "shards", "shards_skipped", "rows", "seconds", "rows_per_second")}])


def _print_selection(result: dict) -> None:
    meta, report = result["selection"], result["report"]
    rows = []
    for t, r in zip(meta["targets"], report["targets"]):
        rows.append({"target": t["target"], "quota": t["quota"], "candidates": t["candidates"],
                     "selected": t["selected"], "KL(t‖raw)": r["kl_target_raw"],
                     "KL(t‖random)": r["kl_target_random"], "KL(t‖selected)": r["kl_target_selected"],
                     "floor": r["kl_floor"]})
    print_rows(f"selection {meta['name']} ({meta['method']}, seed {meta['seed']}, fit {meta['fit_hash']})", rows)
    console.print(f"written: [bold]selections/{meta['name']}/selected.parquet[/] "
                  f"(catalog view selections_{meta['name']})")


@app.command()
def fit(
    run_dir: RunDirArg,
    config: ConfigOpt = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="NAME=PATH[,PATH...]: target text files (any supported format); repeatable")] = None,
    target_sql: Annotated[list[str] | None, typer.Option(
        "--target-sql", help="NAME=QUERY: target text from a query over this run's catalog; repeatable")] = None,
    ngrams: Annotated[int, typer.Option(help="unigrams up to n-grams")] = 2,
    buckets: Annotated[int, typer.Option(help="hash buckets")] = 10_000,
    tokens_to_fit: Annotated[str, typer.Option(help="n-gram features of the run for p_raw: N, auto or all")] = "auto",
    laplace: Annotated[float, typer.Option(help="add-alpha smoothing of bucket counts")] = 0.0,
    log_level: LogLevel = "WARNING",
) -> None:
    """Fit p_raw over RUN_DIR and p_target per target into RUN_DIR/dsir/fits/<fit_hash>.parquet."""
    prefect_logging(log_level)
    from thresher.config import InputSpec
    from thresher.dsir.config import DsirConfig, DsirTarget, load_dsir_config
    from thresher.flows.dsir import dsir_fit_flow

    if config is not None:
        if target or target_sql:
            fail("give targets either in --config or with --target/--target-sql, not both")
        loaded = run_flow(load_dsir_config, config)
    else:
        targets = [DsirTarget(name=n, inputs=[InputSpec(paths=p.split(","))]) for n, p in _pairs(target, "--target")]
        targets += [DsirTarget(name=n, sql=q) for n, q in _pairs(target_sql, "--target-sql")]
        if not targets:
            fail("no target: give --target NAME=PATH, --target-sql NAME=QUERY or --config")
        budget: int | str = int(tokens_to_fit) if tokens_to_fit.isdigit() else tokens_to_fit
        loaded = run_flow(lambda: DsirConfig(targets=targets, ngrams=ngrams, num_buckets=buckets,
                                         num_tokens_to_fit=budget, laplace=laplace))
    result = run_flow(dsir_fit_flow, str(run_dir), loaded)
    _print_fit(result["fit"])


@app.command()
def weight(run_dir: RunDirArg, fit_hash: FitOpt = None, log_level: LogLevel = "WARNING") -> None:
    """Write every shard's log importance weights into RUN_DIR/scores/dsir@<version>/."""
    prefect_logging(log_level)
    from thresher.flows.dsir import dsir_weight_flow

    _print_weights(run_flow(dsir_weight_flow, str(run_dir), fit_hash)["weights"])


@app.command()
def select(
    run_dir: RunDirArg,
    config: ConfigOpt = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="selection name: selections/<name>/")] = None,
    k: Annotated[int | None, typer.Option("-k", help="documents to select")] = None,
    method: Annotated[str, typer.Option(help="gumbel (importance resampling) or top_k")] = "gumbel",
    seed: Annotated[int | None, typer.Option(help="Gumbel seed; default: the run's seed")] = None,
    where: Annotated[str | None, typer.Option(help="SQL predicate over documents_scored")] = None,
    candidates: Annotated[str | None, typer.Option(help="SQL query returning candidate doc_ids")] = None,
    min_length: Annotated[int, typer.Option(help="minimum word-punct tokens of a candidate")] = 100,
    proportion: Annotated[list[str] | None, typer.Option(
        help="TARGET=SHARE of k per target; repeatable (default: by target size)")] = None,
    fit_hash: FitOpt = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Select documents of RUN_DIR by DSIR weight into selections/<name>/ and report KL divergences."""
    prefect_logging(log_level)
    from thresher.dsir.config import DsirSelection, load_dsir_config
    from thresher.flows.dsir import dsir_select_flow

    if config is not None:
        selection = run_flow(load_dsir_config, config).selection
        if selection is None:
            fail(f"{config} has no `selection` section")
    else:
        if name is None or k is None:
            fail("give --name and -k (or --config with a `selection` section)")
        shares = {t: float(p) for t, p in _pairs(proportion, "--proportion")} or None
        selection = run_flow(lambda: DsirSelection(
            name=name, k=k, method=method, seed=seed, where=where, candidates_sql=candidates,
            min_example_length=min_length, proportions=shares))
    _print_selection(run_flow(dsir_select_flow, str(run_dir), selection, fit_hash))
