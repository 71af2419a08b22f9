"""SQL that thresher builds around what users write: identifier quoting, and the guard that keeps a
user's expression (a selection predicate, a DSIR `where`, a distillation target) one expression.

Recipe SQL is spliced into thresher's own queries, so it must parse as exactly one statement once
spliced: a `;` cannot smuggle in a statement of its own."""

from __future__ import annotations

import re

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
    if statements[0].type != duckdb.StatementType.SELECT:
        raise error(f"{label}: must be an expression inside a SELECT")
    return sql


def sql_string(value: str) -> str:
    """`value` as a DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


# Statement kinds a reader may run. Everything else creates, modifies or writes something: COPY and
# EXPORT write files, ATTACH creates a database file, LOAD/INSTALL run extension code, SET/RESET change
# the sandbox, CREATE/INSERT/... modify the catalog, CALL runs table functions such as checkpoint().
_READ_ONLY_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_EXPLAIN_PREFIX = re.compile(r"EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.I)


def require_read_only(sql: str) -> None:
    """Raise duckdb.PermissionException unless every statement of `sql` only reads.

    EXPLAIN ANALYZE executes the statement it explains, so EXPLAIN passes only in front of a SELECT."""
    for statement in duckdb.extract_statements(sql):
        kind = statement.type
        if kind == duckdb.StatementType.EXPLAIN:
            text = _LEADING_COMMENTS.sub("", statement.query)
            prefix = _EXPLAIN_PREFIX.match(text)
            inner = duckdb.extract_statements(text[prefix.end():]) if prefix else []
            if len(inner) != 1 or inner[0].type != duckdb.StatementType.SELECT:
                raise duckdb.PermissionException("the run catalog is read-only: EXPLAIN only before a SELECT")
        elif kind not in _READ_ONLY_TYPES:
            raise duckdb.PermissionException(
                f"the run catalog is read-only: {kind.name} statements are not allowed (SELECT and EXPLAIN are)")
