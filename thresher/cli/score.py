"""`thresher score` and `thresher scorers`: run registered scorers; list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import print_rows
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
    """List the available scorers and the columns each writes."""
    from thresher.scorers.registry import available_scorers, build_scorer

    rows = []
    for name in available_scorers():
        scorer = build_scorer(name)
        columns = [f.name for f in scorer.output_schema if f.name != "doc_id"]
        rows.append({"scorer": f"{scorer.name}@{scorer.version}", "columns": ", ".join(columns)})
    print_rows("scorers", rows)
