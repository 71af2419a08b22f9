"""`thresher select`: apply a selection recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.run import LogLevel, prefect_logging, run_flow
from thresher.cli.summaries import (
    print_selections,
)

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def select(
    run_dir: Annotated[Path, typer.Argument(help="a scored run directory")],
    recipe: Annotated[Path, typer.Argument(help="selection recipe YAML: name, table, where, limit, order_by, seed")],
    log_level: LogLevel = "WARNING",
) -> None:
    """Apply a selection recipe to RUN_DIR: selections/<name>/ with the selected doc_ids and the funnel."""
    prefect_logging(log_level)
    from thresher.config import load_selection_recipe
    from thresher.flows.select import select_flow

    loaded = run_flow(load_selection_recipe, recipe)
    print_selections(run_flow(select_flow, str(run_dir), [loaded]))
