"""Printing DuckDB results and a small interactive SQL shell over a read-only catalog.

`table` output is for people: rich wraps and shortens it to fit the terminal. Every other format is
for programs and writes each value exactly, whatever the terminal width:

- csv: RFC 4180 through the stdlib writer (fields holding commas, quotes or newlines are quoted), a
  header row first. NULL and the empty string both appear as an empty field: use json, jsonl or
  parquet where the difference matters.
- json: one JSON array of objects; jsonl: one object per line. Integers stay integers, NULL is null,
  timestamps and dates are ISO 8601 strings, blobs are base64 strings, decimals are strings (no digit
  lost to a float), NaN and infinities are the strings "NaN", "Infinity", "-Infinity" (JSON has no
  literal for them), lists are arrays, structs objects, maps arrays of [key, value] pairs.
  Text is written as UTF-8, not \\u-escaped.
- parquet: the Arrow types DuckDB returns, written to a file only.
"""

from __future__ import annotations

import base64
import csv
import datetime
import decimal
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO

import duckdb
from rich.console import Console
from rich.table import Table

PROMPT = "thresher> "
CONTINUATION = "     ...> "
TABLE_ROWS = 50  # rows a table shows when --max-rows is not given; machine formats write every row
BATCH_ROWS = 2048  # rows converted to Python at a time, so output streams with bounded memory


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


TEXT_FORMATS = (OutputFormat.csv, OutputFormat.json, OutputFormat.jsonl)


def print_result(relation: duckdb.DuckDBPyRelation | None, console: Console, *, max_rows: int | None,
                 output: OutputFormat | str = OutputFormat.table) -> None:
    """Print `relation` on `console`'s stream: a rich table, or exact csv/json/jsonl (see the module doc).
    `max_rows` None means TABLE_ROWS for a table and every row otherwise."""
    if relation is None:  # a statement with no result set
        return
    output = OutputFormat(output)
    if output is OutputFormat.table:
        _print_table(relation, console, TABLE_ROWS if max_rows is None else max_rows)
        return
    # Straight to the stream, past rich, which would wrap long values at the terminal width.
    write_text(relation, output, console.file, max_rows=max_rows)
    console.file.flush()


def _print_table(relation: duckdb.DuckDBPyRelation, console: Console, max_rows: int) -> None:
    rows = relation.limit(max_rows + 1).fetchall()
    table = Table(show_lines=False)
    for column in relation.columns:
        table.add_column(column, overflow="fold", max_width=60)
    for row in rows[:max_rows]:
        table.add_row(*["NULL" if v is None else _shorten(str(v)) for v in row])
    console.print(table)
    if len(rows) > max_rows:
        console.print(f"(first {max_rows} rows shown; use --max-rows or LIMIT)")


def _shorten(value: str, limit: int = 300) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _rows(relation: duckdb.DuckDBPyRelation, max_rows: int | None) -> Iterator[tuple]:
    limited = relation if max_rows is None else relation.limit(max_rows)
    for batch in limited.to_arrow_reader(BATCH_ROWS):
        # Column by column: to_pylist on the batch would merge columns that share a name.
        yield from zip(*(column.to_pylist() for column in batch.columns))


def _unique_columns(relation: duckdb.DuckDBPyRelation, output: OutputFormat) -> list[str]:
    columns = relation.columns
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(f"-o {output.value} needs distinct column names; give {', '.join(map(repr, repeated))} "
                         "aliases (AS ...)")
    return columns


def _json_value(value: object) -> object:
    """`value` (as Arrow's to_pylist gives it) as something json.dumps writes exactly."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):  # named tuples, e.g. Arrow's MonthDayNano interval
        return {k: _json_value(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)  # decimal.Decimal, uuid, timedelta: their exact text


def _csv_value(value: object) -> object:
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, (float, decimal.Decimal)):
        converted = _json_value(value)
        return converted if isinstance(converted, str) else repr(converted)
    converted = _json_value(value)
    # Nested values as JSON text; bools as JSON's true/false rather than Python's True/False.
    return converted if isinstance(converted, str) else json.dumps(converted, ensure_ascii=False)


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, allow_nan=False)


def write_text(relation: duckdb.DuckDBPyRelation, output: OutputFormat, stream: IO[str], *,
               max_rows: int | None) -> int:
    """Write the rows of `relation` to `stream` as csv, json or jsonl; returns the rows written."""
    written = 0
    if output is OutputFormat.csv:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(relation.columns)
        for row in _rows(relation, max_rows):
            writer.writerow([_csv_value(v) for v in row])
            written += 1
        return written
    columns = _unique_columns(relation, output)
    if output is OutputFormat.json:
        stream.write("[")
    for row in _rows(relation, max_rows):
        text = _dumps({c: _json_value(v) for c, v in zip(columns, row)})
        if output is OutputFormat.json:
            stream.write(("\n" if written == 0 else ",\n") + text)
        else:
            stream.write(text + "\n")
        written += 1
    if output is OutputFormat.json:
        stream.write("\n]\n" if written else "]\n")
    return written


def write_file(relation: duckdb.DuckDBPyRelation, output: OutputFormat, path: Path, *,
               max_rows: int | None) -> int:
    """Write the rows of `relation` to `path`, which appears only once complete; returns the rows written."""
    if output is OutputFormat.parquet:
        from thresher.storage.parquet_io import AtomicParquetWriter

        _unique_columns(relation, output)
        limited = relation if max_rows is None else relation.limit(max_rows)
        reader = limited.to_arrow_reader(BATCH_ROWS)
        with AtomicParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write(batch)
        return writer.rows
    with _atomic_text(path) as stream:
        return write_text(relation, output, stream, max_rows=max_rows)


@contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- the interactive shell -------------------------------------------------------------------------

SHELL_HELP = """\
Statements end with ';' and may span lines. Commands (at the start of a line, no ';' needed):
  .tables              the run's views, each once, with what it holds
  .schema [VIEW]       columns and types of VIEW (of every view without one)
  .mode [MODE]         print results as table, csv, json or jsonl (without MODE: the current one)
  .help                this text
  .quit / .exit        leave (Ctrl-D too)"""

SHELL_MODES = ("table", "csv", "json", "jsonl")


class _Shell:
    def __init__(self, con, console: Console, *, max_rows: int | None, mode: str):
        self.con, self.console, self.max_rows, self.mode = con, console, max_rows, mode
        self.commands: dict[str, Callable[[str], bool | None]] = {
            ".tables": self.tables, ".schema": self.schema, ".mode": self.set_mode, ".help": self.help,
            ".quit": self.quit, ".exit": self.quit, "\\q": self.quit,
        }

    def show(self, relation: duckdb.DuckDBPyRelation | None) -> None:
        try:
            print_result(relation, self.console, max_rows=self.max_rows, output=self.mode)
        except (duckdb.Error, ValueError) as exc:
            self.error(str(exc))

    def error(self, message: str) -> None:
        from thresher.cli.console import err_console

        # On stderr, so a script piped through the shell leaves only results on stdout.
        err_console.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)

    def dot_command(self, line: str) -> bool:
        """Run one dot-command line; True when the shell should end."""
        name, _, argument = line.rstrip(";").strip().partition(" ")
        command = self.commands.get(name)
        if command is None:
            self.error(f"unknown command {name!r} (.help lists the commands)")
            return False
        return bool(command(argument.strip()))

    def tables(self, _argument: str) -> None:
        self.show(self.con.sql("SELECT name, description FROM thresher_views ORDER BY position"))

    def schema(self, view: str) -> None:
        names = {name for (name,) in self.con.sql("SELECT name FROM thresher_views").fetchall()}
        if view and view not in names:
            self.error(f"no view named {view!r} (.tables lists them)")
            return
        wanted = "c.table_name = $view" if view else "TRUE"
        self.show(self.con.sql(
            "SELECT c.table_name AS view, c.column_name AS column, c.data_type AS type "
            "FROM duckdb_columns() c JOIN thresher_views v ON v.name = c.table_name "
            f"WHERE {wanted} ORDER BY v.position, c.column_index",
            params={"view": view} if view else None))

    def set_mode(self, mode: str) -> None:
        if not mode:
            self.console.print(f"mode: {self.mode}", markup=False, highlight=False)
        elif mode in SHELL_MODES:
            self.mode = mode
        else:
            self.error(f"unknown mode {mode!r}: one of {', '.join(SHELL_MODES)}")

    def help(self, _argument: str) -> None:
        self.console.print(SHELL_HELP, markup=False, highlight=False, soft_wrap=True)

    def quit(self, _argument: str) -> bool:
        return True

    def statement(self, statement: str) -> None:
        try:
            relation = self.con.sql(statement)
        except duckdb.Error as exc:
            self.error(str(exc))
            return
        self.show(relation)


def run_shell(con, console: Console, *, max_rows: int | None, mode: str = "table") -> None:
    """Read statements ending in `;` and dot-commands, printing results until EOF or `.quit`."""
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    shell = _Shell(con, console, max_rows=max_rows, mode=mode)
    # Statements piped in (`thresher sql RUN < queries.sql`) get results only: no banner, no prompts.
    interactive = sys.stdin.isatty()
    if interactive:
        console.print("thresher SQL shell (read-only). End statements with ';'. "
                      ".tables lists the views, .help the commands; .quit or Ctrl-D leaves.",
                      markup=False, highlight=False)
    buffer: list[str] = []
    while True:
        try:
            line = input((CONTINUATION if buffer else PROMPT) if interactive else "")
        except EOFError:
            if "\n".join(buffer).strip():  # a last statement without ';' still runs
                shell.statement("\n".join(buffer))
            if interactive:
                console.print()
            return
        # A dot-command is a line of its own: handled here, it never joins the next statement.
        if not buffer and line.strip().startswith((".", "\\")):
            if shell.dot_command(line):
                return
            continue
        buffer.append(line)
        statement = "\n".join(buffer).strip()
        if not statement.endswith(";"):
            continue
        buffer.clear()
        shell.statement(statement)
