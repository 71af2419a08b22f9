"""Printing DuckDB results and a small interactive SQL shell over a read-only catalog."""

from __future__ import annotations

import csv
import io
import json

import duckdb
from rich.console import Console
from rich.table import Table

PROMPT = "thresher> "
CONTINUATION = "     ...> "


def print_result(relation: duckdb.DuckDBPyRelation | None, console: Console, *, max_rows: int,
                 output: str = "table") -> None:
    if relation is None:  # a statement with no result set
        return
    if output == "csv":
        console.print(_csv(relation, max_rows), end="", markup=False, highlight=False)
        return
    if output == "json":
        rows = [dict(zip(relation.columns, r)) for r in relation.limit(max_rows).fetchall()]
        console.print(json.dumps(rows, default=str, indent=2), markup=False, highlight=False)
        return
    columns = relation.columns
    rows = relation.limit(max_rows + 1).fetchall()
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold", max_width=60)
    for row in rows[:max_rows]:
        table.add_row(*["NULL" if v is None else _shorten(str(v)) for v in row])
    console.print(table)
    if len(rows) > max_rows:
        console.print(f"(first {max_rows} rows shown; use --max-rows or LIMIT)")


def _shorten(value: str, limit: int = 300) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _csv(relation: duckdb.DuckDBPyRelation, max_rows: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(relation.columns)
    writer.writerows(relation.limit(max_rows).fetchall())
    return buffer.getvalue()


def run_shell(con: duckdb.DuckDBPyConnection, console: Console, *, max_rows: int) -> None:
    """Read statements ending in `;` and print their results until EOF or `.quit`."""
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    console.print("thresher SQL shell (read-only). End statements with ';'. "
                  "'SELECT * FROM thresher_views;' lists the views; .quit or Ctrl-D leaves.")
    buffer: list[str] = []
    while True:
        try:
            line = input(CONTINUATION if buffer else PROMPT)
        except EOFError:
            console.print()
            return
        if not buffer and line.strip() in {".quit", ".exit", "\\q"}:
            return
        buffer.append(line)
        statement = "\n".join(buffer).strip()
        if not statement.endswith(";"):
            continue
        buffer.clear()
        try:
            print_result(con.sql(statement), console, max_rows=max_rows)
        except duckdb.Error as exc:
            console.print(f"[red]{exc}[/]")
