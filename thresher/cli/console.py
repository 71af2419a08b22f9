"""Terminal output shared by every command: errors and small tables."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def fail(message: str, hint: str | None = None) -> NoReturn:
    """Print `error: message` (and `hint: …`) on stderr and exit with status 2."""
    # soft_wrap keeps paths whole; Text keeps brackets in messages from being read as markup.
    err_console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
    if hint:
        err_console.print(Text("hint: ", style="bold") + Text(hint), soft_wrap=True)
    raise typer.Exit(code=2)


def parse_key_values(items: list[str] | None, option: str) -> dict:
    """`KEY=VALUE` command-line items as a dict; a VALUE that parses as JSON is taken as JSON
    (numbers, booleans, objects), anything else as a string. A malformed item fails naming `option`."""
    import json

    parsed: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"{option} {item!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _cell(value: object, float_format: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


def print_rows(title: str, rows: list[dict], float_format: str = ".4g") -> None:
    """A table with one column per key of the first row; nothing when there are no rows."""
    if not rows:
        return
    table = Table(title=title, title_justify="left")
    for column in rows[0]:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        table.add_row(*[_cell(v, float_format) for v in row.values()])
    console.print(table)
