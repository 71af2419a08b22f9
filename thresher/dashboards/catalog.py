"""Read-only access to a run's catalog for the dashboard: the connection, its views and columns.

SQL hygiene for every panel module: values that come from a user (ranges, reasons, cluster ids,
pages) are always bound as `?` parameters; view and column names come from the catalog itself or
from a stage's declaration (a caller's name is looked up in the catalog first, `NotFound`
otherwise) and are quoted with `quote_ident`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.storage.catalog import ReadOnlyConnection, latest_score_keys, open_catalog, score_view_name
from thresher.storage.run_dir import DATA_TABLES, RunDir
from thresher.storage.sql import quote_ident

__all__ = ["MAX_PER_PAGE", "MAX_TEXT_CHARS", "Catalog", "CatalogUnavailable", "Column", "InvalidParameter",
           "NotFound", "check_page", "quote_ident", "read_catalog", "value_expr"]

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
MAX_PER_PAGE = 100
MAX_TEXT_CHARS = 20_000


class CatalogUnavailable(RuntimeError):
    """The catalog cannot be opened right now (absent, or locked by a stage rebuilding it)."""


class NotFound(LookupError):
    """A view, column, cluster or selection that this run's catalog does not have."""


class InvalidParameter(ValueError):
    """A request parameter with a value the panel cannot use."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str

    @property
    def base_type(self) -> str:
        return self.type.split("(", 1)[0].upper()

    @property
    def is_boolean(self) -> bool:
        return self.type.upper() == "BOOLEAN"

    @property
    def is_integer(self) -> bool:
        return self.type.upper() in _INTEGER_TYPES or self.is_boolean

    @property
    def is_numeric(self) -> bool:
        return self.is_integer or self.type.upper() in _FLOAT_TYPES or self.base_type == "DECIMAL"


def value_expr(column: Column) -> str:
    """The column as a finite DOUBLE or NULL: NaN and infinities would break bins and means."""
    value = f"CAST({quote_ident(column.name)} AS DOUBLE)"
    return f"(CASE WHEN isfinite({value}) THEN {value} END)"


def check_page(page: int, per_page: int) -> None:
    if page < 1:
        raise InvalidParameter("page must be 1 or more")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidParameter(f"per_page must be between 1 and {MAX_PER_PAGE}")


@dataclass
class Catalog:
    """One read-only connection to a run's catalog and what the dashboard knows about its views."""

    run: RunDir
    con: ReadOnlyConnection
    views: dict[str, str]  # name -> description, in catalog order
    _columns: dict[str, list[Column]] = field(default_factory=dict)
    _definitions: dict[str, str] | None = None

    # -- queries --

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        # Fetch fully: an unfinished result would block the connection for the next query.
        return self.con.execute(sql, list(params)).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def count(self, view: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {quote_ident(view)}") or 0)

    # -- views and columns --

    def has(self, view: str) -> bool:
        return view in self.views

    def columns(self, view: str) -> list[Column]:
        if view not in self.views:
            raise NotFound(f"this run has no view {view!r}")
        if view not in self._columns:
            described = self.rows(f"DESCRIBE SELECT * FROM {quote_ident(view)}")
            self._columns[view] = [Column(str(r[0]), str(r[1])) for r in described]
        return self._columns[view]

    def column(self, view: str, name: str) -> Column:
        for column in self.columns(view):
            if column.name == name:
                return column
        raise NotFound(f"view {view!r} has no column {name!r}")

    def column_names(self, view: str) -> set[str]:
        return {c.name for c in self.columns(view)}

    def has_columns(self, view: str, *names: str | None) -> bool:
        """The view exists and holds every named column (None: a role the stage does not write)."""
        return self.has(view) and {n for n in names if n is not None} <= self.column_names(view)

    def definitions(self) -> dict[str, str]:
        """Each view's SQL body, so that aliases (same body, another name) can be recognised."""
        if self._definitions is None:
            found: dict[str, str] = {}
            for _database, name, sql in self.rows(
                "SELECT database_name, view_name, sql FROM duckdb_views() WHERE NOT internal "
                "ORDER BY database_name = 'temp' DESC"
            ):
                if name in self.views and name not in found:
                    found[name] = re.sub(r"^\s*CREATE\s+(TEMP\s+)?VIEW\s+.+?\s+AS\s+", "", sql or "",
                                         count=1, flags=re.IGNORECASE | re.DOTALL).strip()
            self._definitions = found
        return self._definitions

    def unique_views(self) -> list[str]:
        """Views in catalog order minus aliases (e.g. `score_x_v1` when it is the same as `score_x`).

        Of views with the same definition the shortest name is kept. The `<table>_scored` joins
        are left out: they repeat the columns of every score view.
        """
        definitions = self.definitions()
        keep: dict[str, str] = {}
        for name in self.views:
            if name in {f"{t}_scored" for t in DATA_TABLES} or name == "thresher_views":
                continue
            body = definitions.get(name) or f"<unknown {name}>"
            if body not in keep or len(name) < len(keep[body]):
                keep[body] = name
        kept = set(keep.values())
        return [name for name in self.views if name in kept]

    def score_keys(self) -> dict[str, str]:
        """{scorer name: "name@version"} of the newest sidecar of each scorer in the run, for those
        the catalog has a view of (the catalog names it `score_<name>`)."""
        return {key.partition("@")[0]: key for key in latest_score_keys(self.run)
                if self.has(score_view_name(key, versioned=False))}

    def data_tables(self) -> list[str]:
        return [t for t in DATA_TABLES if self.has(t) and "doc_id" in self.column_names(t)]


_catalog_locks: dict[Path, threading.Lock] = {}
_catalog_locks_guard = threading.Lock()


def _catalog_lock(run: RunDir) -> threading.Lock:
    # A read-only catalog connection locks DuckDB's configuration for the whole database
    # instance, and connections to one file share an instance inside a process: a second
    # connection opened while the first is alive fails. Requests therefore take turns.
    with _catalog_locks_guard:
        return _catalog_locks.setdefault(run.root, threading.Lock())


@contextmanager
def read_catalog(run_dir: str | Path | RunDir) -> Iterator[Catalog]:
    """Open the run's catalog read-only for the duration of the block."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    lock = _catalog_lock(run)
    with lock:
        try:
            con = open_catalog(run)
        except FileNotFoundError as exc:
            raise CatalogUnavailable(str(exc)) from None
        try:
            names = [(str(r[0]), str(r[1] or "")) for r in con.execute(
                "SELECT name, description FROM thresher_views").fetchall()]
            yield Catalog(run=run, con=con, views=dict(names))
        finally:
            con.close()
