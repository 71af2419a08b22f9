"""SQL that thresher builds around what users write: identifier quoting, and the guard that keeps a
user's expression (a selection predicate, a DSIR `where`, a distillation target) one expression.

Recipe SQL is spliced into thresher's own queries, so it must parse as exactly one statement once
spliced: a `;` cannot smuggle in a statement of its own."""

from __future__ import annotations

import duckdb


def quote_ident(name: str) -> str:
    """`name` as a DuckDB identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def single_statement(sql: str, template: str, *, label: str, error: type[Exception] = ValueError) -> str:
    """`sql` unchanged when `template.format(sql)` parses as exactly one statement; otherwise raise
    `error` with a message that starts with `label` (the recipe key the SQL came from)."""
    try:
        statements = duckdb.extract_statements(template.format(sql))
    except duckdb.Error as exc:
        raise error(f"{label}: {exc}") from None
    if len(statements) != 1:
        raise error(f"{label}: must be a single SQL expression, without ';'")
    return sql
