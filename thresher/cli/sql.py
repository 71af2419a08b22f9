"""`thresher sql`: query a run's catalog read-only, or open an interactive shell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail
from thresher.cli.run import fail_on
from thresher.cli.sql_shell import TABLE_ROWS, OutputFormat

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def sql(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    query: Annotated[str | None, typer.Argument(help="SQL; omit for an interactive shell")] = None,
    output: Annotated[OutputFormat, typer.Option(
        "--output", "-o", case_sensitive=False,
        help="table: for people, wrapped to the terminal. csv, json (one array), jsonl (one object a line), "
             "parquet (needs --out): every value exact, never wrapped; NULL is null (empty in csv), "
             "timestamps ISO 8601, blobs base64, decimals strings")] = OutputFormat.table,
    out: Annotated[Path | None, typer.Option(
        "--out", help="write csv, json, jsonl or parquet to this file (it appears only when complete) "
                      "instead of stdout")] = None,
    max_rows: Annotated[int | None, typer.Option(
        min=0, help=f"rows to print at most; default {TABLE_ROWS} for -o table, every row for the "
                    "other formats (which it limits too when given)")] = None,
) -> None:
    """Query RUN_DIR's DuckDB catalog (read-only); `thresher sql RUN` opens a shell (`.tables`, `.help`)."""
    from thresher.cli.sql_shell import TEXT_FORMATS, print_result, run_shell, write_file
    from thresher.storage.catalog import open_catalog
    from thresher.storage.run_dir import RunDir

    if output is OutputFormat.parquet and out is None:
        fail("-o parquet writes a file: give --out FILE.parquet")
    if out is not None and output is OutputFormat.table:
        fail("--out writes csv, json, jsonl or parquet: add -o FORMAT")
    if query is None and (out is not None or output not in (OutputFormat.table, *TEXT_FORMATS)):
        fail("the interactive shell prints to the terminal: give a QUERY to write a file")
    try:
        con = open_catalog(RunDir(run_dir))
    except FileNotFoundError as exc:
        fail_on(exc)
    import duckdb

    with con:
        if query is None:
            run_shell(con, console, max_rows=max_rows, mode=output.value)
            return
        try:
            relation = con.sql(query)
            if out is None:
                print_result(relation, console, max_rows=max_rows, output=output)
            elif relation is not None:
                write_file(relation, output, out, max_rows=max_rows)
        except BrokenPipeError:
            # The reader left (`| head`): stop quietly, and keep Python's exit-time flush from failing too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(code=1) from None
        except (duckdb.Error, ValueError) as exc:
            fail_on(exc)
        except OSError as exc:
            fail(f"--out {out}: {exc.strerror or exc}")
