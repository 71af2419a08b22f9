"""`thresher sql`: query a run's catalog read-only, or open an interactive shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def sql(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    query: Annotated[str | None, typer.Argument(help="SQL; omit for an interactive shell")] = None,
    max_rows: Annotated[int, typer.Option(help="rows to print at most")] = 50,
    output: Annotated[str, typer.Option("--output", "-o", help="table|csv|json")] = "table",
) -> None:
    """Query RUN_DIR's DuckDB catalog (read-only). `SELECT * FROM thresher_views` lists the views."""
    from thresher.cli.sql_shell import print_result, run_shell
    from thresher.storage.catalog import open_catalog
    from thresher.storage.run_dir import RunDir

    try:
        con = open_catalog(RunDir(run_dir))
    except FileNotFoundError as exc:
        fail(str(exc))
    with con:
        if query is None:
            run_shell(con, console, max_rows=max_rows)
            return
        import duckdb

        try:
            relation = con.sql(query)
        except duckdb.Error as exc:
            fail(str(exc))
        print_result(relation, console, max_rows=max_rows, output=output)
