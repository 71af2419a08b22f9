"""`thresher curate` and `thresher demo`: the end-to-end flow for a recipe, and the embedded demo."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console
from thresher.cli.run import LogLevel, prefect_logging, run_flow
from thresher.cli.summaries import print_curation

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def curate(
    recipe: Annotated[Path, typer.Argument(
        help="recipe YAML: name, run_dir, inputs, and optionally ingest, scorers, dedup, dsir, judges, embeddings, "
        "selections, augment, task_runner, seed (every key: docs/recipe.md or `thresher recipe reference`)")],
    log_level: LogLevel = "WARNING",
) -> None:
    """Run every stage RECIPE names (ingest, score, dedup, DSIR, judges, embeddings, selections,
    augment) into its run directory and catalog. The recipe is checked first as `thresher validate
    RECIPE` does (run that alone to check without running): every problem is listed before any work
    starts. Every recipe key, its type and default: docs/recipe.md (`thresher recipe reference`); a
    JSON Schema for editors: `thresher recipe schema`."""
    prefect_logging(log_level)
    from thresher.cli.validate import check_recipe, fail_on_problems
    from thresher.config import load_recipe
    from thresher.flows.curate import curate_flow

    started = time.perf_counter()
    fail_on_problems(recipe, check_recipe(recipe, [])[0])
    loaded = run_flow(load_recipe, recipe)
    result = run_flow(curate_flow, loaded)
    print_curation(result)
    console.print(f"run directory: [bold]{result['run_dir']}[/]  ({time.perf_counter() - started:.1f} s)")


def demo(
    run_dir: Annotated[Path, typer.Argument(help="where the demo run goes")] = Path("thresher-demo-run"),
    conversations: Annotated[int, typer.Option(help="ShareGPT conversations to take")] = 1500,
    log_level: LogLevel = "WARNING",
) -> None:
    """Curate the embedded demo corpus end to end (no network needed) and show how to query it."""
    prefect_logging(log_level)
    from thresher.demo import run_demo

    started = time.perf_counter()
    result = run_flow(run_demo, run_dir, conversations)
    print_curation(result)
    console.print(f"\n[bold green]demo finished[/] in {time.perf_counter() - started:.1f} s")
    console.print(f"run directory: [bold]{result['run_dir']}[/]\n")
    # Show the command as the user can type it: a venv's script is not on PATH until activated.
    program = "thresher" if shutil.which("thresher") else sys.argv[0]
    console.print("Try:")
    for query_run, query in result["example_queries"]:
        shown = Path(run_dir) / Path(query_run).relative_to(result["run_dir"])  # as the user named the run
        console.print(f"  {program} sql {shown} \"{query}\"", soft_wrap=True, markup=False, highlight=False)
