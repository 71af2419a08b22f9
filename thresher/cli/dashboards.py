"""`thresher dashboard` and `thresher report`: typer command functions, registered by thresher.cli.

    app.command()(dashboard)
    app.command()(report)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console
from thresher.cli.run import fail_on

RunDirArg = Annotated[Path, typer.Argument(help="a run directory (with catalog.duckdb)", show_default=False)]


def dashboard(
    run_dir: RunDirArg,
    host: Annotated[str, typer.Option(help="interface to listen on; 127.0.0.1 keeps it on this machine")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8765,
) -> None:
    """Serve a read-only web dashboard over RUN_DIR: stage funnel, score histograms, quarantine,
    sample viewer per score band, and the dedup, selection/DSIR, judge and evol panels the run has."""
    from thresher.dashboards.app import serve
    from thresher.dashboards.data import CatalogUnavailable, read_catalog

    try:
        with read_catalog(run_dir):
            pass
    except CatalogUnavailable as exc:
        fail_on(exc)
    console.print(f"dashboard of [bold]{run_dir}[/] on [bold]http://{host}:{port}/[/]  (Ctrl-C stops it)",
                  soft_wrap=True, highlight=False)
    serve(run_dir, host=host, port=port)


def report(
    run_dir: RunDirArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write",
                                             show_default="RUN_DIR/report.html")] = None,
) -> None:
    """Write a self-contained HTML report of RUN_DIR (every panel; plotly.js inlined, works offline)."""
    from thresher.dashboards.data import CatalogUnavailable
    from thresher.dashboards.report import write_report

    target = out if out is not None else Path(run_dir) / "report.html"
    try:
        path = write_report(run_dir, target)
    except CatalogUnavailable as exc:
        fail_on(exc)
    size = path.stat().st_size
    console.print(f"report: [bold]{path}[/] ({size / 2**20:.1f} MiB)", soft_wrap=True, highlight=False)
