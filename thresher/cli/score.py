"""`thresher score` and `thresher scorers`: run registered scorers; list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console
from thresher.cli.run import LogLevel, prefect_logging, run_flow
from thresher.cli.summaries import (
    print_score,
)

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def score(
    run_dir: Annotated[Path, typer.Argument(help="an ingested run directory")],
    scorer: Annotated[list[str] | None, typer.Option("--scorer", "-s", help="scorer name; repeatable")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run scorers over every shard of RUN_DIR into scores/<scorer>@<version>/ sidecar tables."""
    prefect_logging(log_level)
    from thresher.config import DEFAULT_SCORERS, ScorerSpec
    from thresher.flows.score import score_flow

    specs = [ScorerSpec(name=n) for n in scorer] if scorer else list(DEFAULT_SCORERS)
    print_score(run_flow(score_flow, str(run_dir), specs))


def scorers() -> None:
    """List every registered scorer and judge (each version): the stage that runs it, the table it
    reads, its parameters and the columns it writes. Read from the classes: nothing is built and no
    model is loaded."""
    from thresher.scorers.registry import describe, registrations

    for registration in registrations():
        d = describe(registration.key)
        lines = [f"{d.key}  ({d.stage} stage; reads {d.table or 'every table'})",
                 f"  required params: {', '.join(d.required) or 'none'}",
                 f"  optional params: {', '.join(d.optional) or 'none'}",
                 f"  columns: doc_id, {', '.join(d.columns)}"]
        lines += [f"  columns depend on {param}: {how}" for param, how in d.column_params]
        # soft_wrap: a long line is never broken inside a column name.
        console.print("\n".join(lines), soft_wrap=True, markup=False, highlight=False)
