"""`thresher serve`: serve the scheduled deployments of prefect.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console
from thresher.cli.run import LogLevel, prefect_logging, run_flow

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def serve(
    prefect_yaml: Annotated[Path, typer.Option(help="the deployments file")] = Path("prefect.yaml"),
    only: Annotated[list[str] | None, typer.Option("--only", help="serve only this deployment; repeatable")] = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the scheduled deployments of prefect.yaml from this process (no work pool needed).

    Runs until interrupted; the Prefect UI (`prefect server start`) shows the deployments, their
    schedules and runs. For work-pool based deployments use `prefect deploy --all` instead."""
    prefect_logging(log_level)
    from prefect import serve as prefect_serve

    from thresher.flows.deployments import load_deployments

    deployments = run_flow(load_deployments, prefect_yaml, only)
    for deployment in deployments:
        console.print(f"serving [bold]{deployment.name}[/] {deployment.parameters}")
    prefect_serve(*deployments)
