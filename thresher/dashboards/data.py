"""Read-only panel data for the dashboard and the static report.

Every function here takes a `Catalog` (a read-only connection to a run's `catalog.duckdb` plus
what it knows about the views) and returns small dataclasses: counts, histogram bins, one page of
documents. Nothing here writes, and nothing here renders.

SQL hygiene: values that come from a user (ranges, reasons, cluster ids, pages) are always bound
as `?` parameters; view and column names are only ever taken from the catalog itself (a caller's
name is looked up in the catalog first, `NotFound` otherwise) and are quoted as identifiers.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import DATA_TABLES, RunDir
from thresher.storage.sql import quote_ident

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_MAX_PER_PAGE = 100
_MAX_TEXT_CHARS = 20_000


class CatalogUnavailable(RuntimeError):
    """The catalog cannot be opened right now (absent, or locked by a stage rebuilding it)."""


class NotFound(LookupError):
    """A view, column, cluster or selection that this run's catalog does not have."""


class InvalidParameter(ValueError):
    """A request parameter with a value the panel cannot use."""


# -- the catalog ----------------------------------------------------------------------------------


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


@dataclass
class Catalog:
    """One read-only connection to a run's catalog and what the dashboard knows about its views."""

    run: RunDir
    con: duckdb.DuckDBPyConnection
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
            con = open_catalog(run, read_only=True)
        except FileNotFoundError as exc:
            raise CatalogUnavailable(str(exc)) from None
        except duckdb.IOException as exc:  # another process holds the write lock
            raise CatalogUnavailable(f"the catalog of {run.root} is being rebuilt; try again ({exc})") from None
        try:
            names = [(str(r[0]), str(r[1] or "")) for r in con.execute(
                "SELECT name, description FROM thresher_views").fetchall()]
            yield Catalog(run=run, con=con, views=dict(names))
        finally:
            con.close()


# -- overview -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageInfo:
    name: str
    status: str
    started_at: str | None
    finished_at: str | None
    counts: dict[str, Any]  # top-level numbers the stage recorded in run.json
    tables: dict[str, list[dict]]  # lists of records the stage recorded (e.g. per-scorer summary)


@dataclass(frozen=True)
class RunSummary:
    root: str
    name: str
    seed: Any
    recipe_hash: str | None
    created_at: str | None
    versions: dict[str, str]
    stages: list[StageInfo]
    table_rows: dict[str, int]
    views: list[tuple[str, str]]


def run_manifest(run: RunDir) -> dict:
    try:
        return run.read_manifest()
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_name(run: RunDir) -> str:
    """The recipe's name, else the directory's."""
    recipe = run_manifest(run).get("recipe") or {}
    return str(recipe.get("name") or run.root.name)


def run_summary(cat: Catalog) -> RunSummary:
    manifest = run_manifest(cat.run)
    stages = []
    for name, entry in (manifest.get("stages") or {}).items():
        if not isinstance(entry, dict):
            continue
        counts = {k: v for k, v in entry.items()
                  if isinstance(v, int | float) and not isinstance(v, bool)}
        counts |= {k: sum(v.values()) for k, v in entry.items()
                   if isinstance(v, dict) and v and all(isinstance(x, int) for x in v.values())}
        tables = {k: v for k, v in entry.items()
                  if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
        # {name: {field: value}} (e.g. dedup's per-table counts) reads as one record per name.
        tables |= {k: [{"name": name, **fields} for name, fields in v.items()] for k, v in entry.items()
                   if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values())}
        stages.append(StageInfo(name, str(entry.get("status", "?")), entry.get("started_at"),
                                entry.get("finished_at"), counts, tables))
    stages.sort(key=lambda s: (s.started_at is None, str(s.started_at), s.name))
    table_rows = {t: int(cat.scalar(f"SELECT count(*) FROM {quote_ident(t)}"))
                  for t in (*DATA_TABLES, "quarantine") if cat.has(t)}
    return RunSummary(
        root=str(cat.run.root),
        name=run_name(cat.run),
        seed=manifest.get("seed"),
        recipe_hash=manifest.get("recipe_hash"),
        created_at=manifest.get("created_at"),
        versions=dict(manifest.get("versions") or {}),
        stages=stages,
        table_rows=table_rows,
        views=list(cat.views.items()),
    )


@dataclass(frozen=True)
class FunnelStep:
    label: str
    rows: int
    detail: str = ""


@dataclass(frozen=True)
class Funnel:
    rows_in: int | None
    rows_written: int | None
    rows_quarantined: int | None
    written_by_table: dict[str, int]
    quarantine_reasons: dict[str, int]
    steps: list[FunnelStep]

    @property
    def reconciled(self) -> bool | None:
        if None in (self.rows_in, self.rows_written, self.rows_quarantined):
            return None
        return self.rows_in == self.rows_written + self.rows_quarantined


def funnel(cat: Catalog) -> Funnel:
    """Ingest rows in -> written / quarantined (by reason) -> kept by dedup -> each selection."""
    rows_in = rows_written = rows_quarantined = None
    if cat.has("ingest_stats"):
        rows_in, rows_written, rows_quarantined = cat.rows(
            "SELECT sum(rows_in), sum(rows_written), sum(rows_quarantined) FROM ingest_stats")[0]
    else:
        ingest = (run_manifest(cat.run).get("stages") or {}).get("ingest") or {}
        rows_in, rows_written, rows_quarantined = (ingest.get(k) for k in
                                                   ("rows_in", "rows_written", "rows_quarantined"))
    written_by_table = {t: int(cat.scalar(f"SELECT count(*) FROM {quote_ident(t)}")) for t in DATA_TABLES
                        if cat.has(t)}
    reasons: dict[str, int] = {}
    if cat.has("quarantine"):
        reasons = {str(r): int(n) for r, n in cat.rows(
            "SELECT reason, sum(coalesce(n_rows, 1)) AS n FROM quarantine GROUP BY reason ORDER BY n DESC, reason")}
    if rows_quarantined is None and reasons:
        rows_quarantined = sum(reasons.values())
    if rows_written is None and written_by_table:
        rows_written = sum(written_by_table.values())

    steps: list[FunnelStep] = []
    if rows_in is not None:
        steps.append(FunnelStep("rows in", int(rows_in), "rows read from every input shard"))
    if rows_written is not None:
        detail = ", ".join(f"{t} {n:,}" for t, n in written_by_table.items())
        steps.append(FunnelStep("written", int(rows_written), detail))
    sources = dedup_sources(cat)
    sidecars = [s for s in sources if s.is_sidecar] or sources  # sidecars hold every document once
    for source in sidecars if rows_written is not None else []:
        duplicates = int(cat.scalar(
            f"SELECT count(*) FILTER (WHERE is_duplicate AND prior_run IS NULL) FROM ({source.sql})") or 0)
        steps.append(FunnelStep(f"after dedup ({source.view})", int(rows_written) - duplicates,
                                f"written minus {duplicates:,} duplicates of a cluster's survivor"))
    # Selections are alternatives, not successive steps: largest first keeps the funnel a funnel.
    for selection in sorted(selections(cat), key=lambda s: (-s.rows, s.name)):
        steps.append(FunnelStep(f"selection {selection.name}", selection.rows, selection.view))
    return Funnel(
        rows_in=None if rows_in is None else int(rows_in),
        rows_written=None if rows_written is None else int(rows_written),
        rows_quarantined=None if rows_quarantined is None else int(rows_quarantined),
        written_by_table=written_by_table,
        quarantine_reasons=reasons,
        steps=steps,
    )


# -- score histograms -----------------------------------------------------------------------------


def score_views(cat: Catalog) -> list[str]:
    """`score_*` views holding doc_id, aliases of the newest version left out."""
    return [v for v in cat.unique_views() if v.startswith("score_") and "doc_id" in cat.column_names(v)]


def _is_id(name: str) -> bool:
    return name == "doc_id" or name.endswith("_id") or name == "id"


def numeric_columns(cat: Catalog, view: str) -> list[Column]:
    """Numeric (and boolean) columns of a view, identifiers left out."""
    return [c for c in cat.columns(view) if c.is_numeric and not _is_id(c.name)]


def score_columns(cat: Catalog) -> dict[str, list[str]]:
    """Every numeric column of every score view: {view: [column, ...]}."""
    return {view: [c.name for c in numeric_columns(cat, view)] for view in score_views(cat)}


@dataclass(frozen=True)
class Histogram:
    view: str
    column: str
    type: str
    rows: int  # rows of the view
    values: int  # finite, non-null values
    min: float | None
    max: float | None
    mean: float | None
    lo: float  # left edge of the first bin
    width: float
    counts: list[int]
    below: int  # values left of the shown range (beyond the 0.5th percentile)
    above: int  # values right of it (beyond the 99.5th percentile)
    integer: bool

    @property
    def missing(self) -> int:
        return self.rows - self.values

    @property
    def edges(self) -> list[float]:
        return [self.lo + i * self.width for i in range(len(self.counts) + 1)]

    @property
    def centers(self) -> list[float]:
        return [self.lo + (i + 0.5) * self.width for i in range(len(self.counts))]


def _value_expr(column: Column) -> str:
    value = f"CAST({quote_ident(column.name)} AS DOUBLE)"
    return f"(CASE WHEN isfinite({value}) THEN {value} END)"


def _bin_layout(column: Column, n: int, vmin: float, vmax: float, q_lo: float | None, q_hi: float | None,
                bins: int) -> tuple[float, float, int, float, float]:
    """(first edge, width, number of bins, shown-range low, shown-range high)."""
    # Long tails (document lengths) would squeeze everything into one bin: show the 0.5 to 99.5
    # percentile range and count what lies beyond it. Small samples are shown whole.
    lo, hi = (q_lo, q_hi) if n >= 200 and q_lo is not None and q_hi is not None and q_hi > q_lo else (vmin, vmax)
    if column.is_integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        if hi - lo + 1 <= bins:
            return lo - 0.5, 1.0, int(hi - lo + 1), lo, hi
        width = float(math.ceil((hi - lo + 1) / bins))
        return lo - 0.5, width, int(math.ceil((hi - lo + 1) / width)), lo, hi
    if hi <= lo:
        return lo - 0.5, 1.0, 1, lo, hi
    return lo, (hi - lo) / bins, bins, lo, hi


def histograms(cat: Catalog, view: str, columns: Sequence[str] | None = None, bins: int = 40) -> list[Histogram]:
    """Histograms of numeric columns of `view` (all of them by default), in two queries."""
    if not 1 <= bins <= 500:
        raise InvalidParameter("bins must be between 1 and 500")
    wanted = numeric_columns(cat, view) if columns is None else [cat.column(view, c) for c in columns]
    wanted = [c for c in wanted if c.is_numeric]
    if not wanted:
        return []
    source = quote_ident(view)
    parts = ["count(*)"]
    for column in wanted:
        e = _value_expr(column)
        parts += [f"count({e})", f"min({e})", f"max({e})", f"avg({e})", f"quantile_cont({e}, [0.005, 0.995])"]
    stats = cat.rows(f"SELECT {', '.join(parts)} FROM {source}")[0]
    rows = int(stats[0])
    layouts = []
    for i, column in enumerate(wanted):
        n, vmin, vmax, mean, quantiles = stats[1 + 5 * i: 6 + 5 * i]
        if not n:
            layouts.append((column, 0, None, None, None, None))
            continue
        q_lo, q_hi = (quantiles or [None, None])
        layouts.append((column, int(n), float(vmin), float(vmax), float(mean),
                        _bin_layout(column, int(n), float(vmin), float(vmax), q_lo, q_hi, bins)))

    selects, params = [], []
    for i, (column, _n, *_rest, layout) in enumerate(layouts):
        if layout is None:
            continue
        lo, width, nbins, r_lo, r_hi = layout
        e = _value_expr(column)
        selects.append(
            f"SELECT ? AS i, CASE WHEN {e} < ? THEN -1 WHEN {e} > ? THEN ? "
            f"ELSE least(CAST(floor(({e} - ?) / ?) AS BIGINT), ?) END AS b, count(*) AS n "
            f"FROM {source} WHERE {e} IS NOT NULL GROUP BY b")
        params += [i, r_lo, r_hi, nbins, lo, width, nbins - 1]
    counted: dict[tuple[int, int], int] = {}
    if selects:
        for i, b, n in cat.rows(" UNION ALL ".join(selects), params):
            counted[(int(i), int(b))] = int(n)

    result = []
    for i, (column, n, vmin, vmax, mean, layout) in enumerate(layouts):
        if layout is None:
            result.append(Histogram(view, column.name, column.type, rows, 0, None, None, None, 0.0, 1.0, [], 0, 0,
                                    column.is_integer))
            continue
        lo, width, nbins, _, _ = layout
        result.append(Histogram(
            view=view, column=column.name, type=column.type, rows=rows, values=n, min=vmin, max=vmax, mean=mean,
            lo=lo, width=width, counts=[counted.get((i, b), 0) for b in range(nbins)],
            below=counted.get((i, -1), 0), above=counted.get((i, nbins), 0), integer=column.is_integer,
        ))
    return result


def histogram(cat: Catalog, view: str, column: str, bins: int = 40) -> Histogram:
    return histograms(cat, view, [column], bins=bins)[0]


# -- sample viewer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    lo: float
    hi: float
    rows: int
    label: str


def score_bands(cat: Catalog, view: str, column: str, n: int = 5) -> list[Band]:
    """Quantile bands of a column (closed ranges [lo, hi]) with the rows each holds."""
    if not 1 <= n <= 20:
        raise InvalidParameter("bands must be between 1 and 20")
    col = cat.column(view, column)
    if not col.is_numeric:
        raise NotFound(f"column {column!r} of {view!r} is not numeric")
    e = _value_expr(col)
    points = [i / n for i in range(n + 1)]
    quantiles = cat.scalar(f"SELECT quantile_disc({e}, ?::DOUBLE[]) FROM {quote_ident(view)}", [points])
    if not quantiles:
        return []
    edges = sorted(set(float(x) for x in quantiles if x is not None))
    if len(edges) == 1:
        edges = edges * 2
    ranges = list(zip(edges[:-1], edges[1:]))
    counts = cat.rows(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {e} BETWEEN ? AND ?)" for _ in ranges)
        + f" FROM {quote_ident(view)}", [x for r in ranges for x in r])[0]
    step = 100 / len(ranges)
    return [Band(lo, hi, int(c), f"P{round(i * step)}–P{round((i + 1) * step)}")
            for i, ((lo, hi), c) in enumerate(zip(ranges, counts))]


@dataclass(frozen=True)
class Sample:
    doc_id: str
    value: float | None
    table: str | None
    source: str | None
    url: str | None
    text: str
    text_chars: int

    @property
    def truncated(self) -> bool:
        return self.text_chars > len(self.text)


@dataclass(frozen=True)
class SamplePage:
    view: str
    column: str
    lo: float | None
    hi: float | None
    order: str
    page: int
    per_page: int
    total: int
    samples: list[Sample]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


SAMPLE_ORDERS = ("random", "asc", "desc")


def _check_page(page: int, per_page: int) -> None:
    if page < 1:
        raise InvalidParameter("page must be 1 or more")
    if not 1 <= per_page <= _MAX_PER_PAGE:
        raise InvalidParameter(f"per_page must be between 1 and {_MAX_PER_PAGE}")


def fetch_texts(cat: Catalog, doc_ids: Sequence[str], max_chars: int) -> dict[str, tuple]:
    """{doc_id: (table, source, url, text prefix, text length)} for documents and instructions."""
    if not doc_ids:
        return {}
    selects, params = [], []
    for table in cat.data_tables():
        names = cat.column_names(table)
        url = "CAST(url AS VARCHAR)" if "url" in names else "NULL"
        source = "CAST(source AS VARCHAR)" if "source" in names else "NULL"
        selects.append(f"SELECT CAST(doc_id AS VARCHAR), ? AS tbl, {source}, {url}, left(text, ?), length(text) "
                       f"FROM {quote_ident(table)} WHERE CAST(doc_id AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))")
        params += [table, max_chars, list(doc_ids)]
    if not selects:
        return {}
    return {str(r[0]): tuple(r[1:]) for r in cat.rows(" UNION ALL ".join(selects), params)}


def samples(cat: Catalog, view: str, column: str, lo: float | None = None, hi: float | None = None, *,
            page: int = 1, per_page: int = 10, order: str = "random", seed: int = 0,
            max_chars: int = 4000) -> SamplePage:
    """One page of documents whose `column` in `view` lies in [lo, hi], with their text."""
    _check_page(page, per_page)
    if order not in SAMPLE_ORDERS:
        raise InvalidParameter(f"order must be one of {', '.join(SAMPLE_ORDERS)}")
    if not 1 <= max_chars <= _MAX_TEXT_CHARS:
        raise InvalidParameter(f"max_chars must be between 1 and {_MAX_TEXT_CHARS}")
    if "doc_id" not in cat.column_names(view):
        raise NotFound(f"view {view!r} has no doc_id column")
    col = cat.column(view, column)
    if not col.is_numeric:
        raise NotFound(f"column {column!r} of {view!r} is not numeric")
    for name, value in (("lo", lo), ("hi", hi)):
        if value is not None and not math.isfinite(value):
            raise InvalidParameter(f"{name} must be a finite number")
    e = _value_expr(col)
    where, params = [f"{e} IS NOT NULL"], []
    if lo is not None:
        where.append(f"{e} >= ?")
        params.append(lo)
    if hi is not None:
        where.append(f"{e} <= ?")
        params.append(hi)
    condition = " AND ".join(where)
    total = int(cat.scalar(f"SELECT count(*) FROM {quote_ident(view)} WHERE {condition}", params))
    ordering = {"asc": "v ASC, doc_id", "desc": "v DESC, doc_id", "random": "hash(doc_id, ?), doc_id"}[order]
    page_params = params + ([seed] if order == "random" else []) + [per_page, (page - 1) * per_page]
    picked = cat.rows(
        f"SELECT CAST(doc_id AS VARCHAR) AS doc_id, {e} AS v FROM {quote_ident(view)} WHERE {condition} "
        f"ORDER BY {ordering} LIMIT ? OFFSET ?", page_params)
    texts = fetch_texts(cat, [r[0] for r in picked], max_chars)
    result = []
    for doc_id, value in picked:
        table, source, url, text, n_chars = texts.get(doc_id, (None, None, None, "", 0))
        result.append(Sample(doc_id, value, table, source, url, text or "", int(n_chars or 0)))
    return SamplePage(view, column, lo, hi, order, page, per_page, total, result)


# -- quarantine -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineRow:
    source: str | None
    source_row: int | None
    byte_offset: int | None
    reason: str | None
    detail: str | None
    n_rows: int | None
    raw_bytes: int | None
    raw_preview: str


@dataclass(frozen=True)
class QuarantinePage:
    reason: str | None
    page: int
    per_page: int
    total: int
    reasons: dict[str, int]  # rows per reason (n_rows summed), whole run
    rows: list[QuarantineRow]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def quarantine_page(cat: Catalog, reason: str | None = None, *, page: int = 1, per_page: int = 25,
                    preview_bytes: int = 300) -> QuarantinePage:
    _check_page(page, per_page)
    if not cat.has("quarantine"):
        return QuarantinePage(reason, page, per_page, 0, {}, [])
    reasons = {str(r): int(n) for r, n in cat.rows(
        "SELECT reason, sum(coalesce(n_rows, 1)) AS n FROM quarantine GROUP BY reason ORDER BY n DESC, reason")}
    where, params = ("WHERE reason = ?", [reason]) if reason else ("", [])
    total = int(cat.scalar(f"SELECT count(*) FROM quarantine {where}", params))
    names = cat.column_names("quarantine")

    def col(name: str) -> str:
        return quote_ident(name) if name in names else "NULL"

    raw = "raw[1:?]" if "raw" in names else "NULL"
    raw_len = "octet_length(raw)" if "raw" in names else "NULL"
    raw_params = [preview_bytes] if "raw" in names else []
    rows = cat.rows(
        f"SELECT {col('source')}, {col('source_row')}, {col('byte_offset')}, {col('reason')}, {col('detail')}, "
        f"{col('n_rows')}, {raw_len}, {raw} FROM quarantine {where} "
        f"ORDER BY {col('source')}, {col('source_row')}, {col('byte_offset')} LIMIT ? OFFSET ?",
        raw_params + params + [per_page, (page - 1) * per_page])
    out = []
    for source, source_row, offset, why, detail, n_rows, raw_len_value, raw_value in rows:
        preview = raw_value.decode("utf-8", errors="replace") if isinstance(raw_value, bytes | bytearray) else (
            "" if raw_value is None else str(raw_value))
        out.append(QuarantineRow(None if source is None else Path(str(source)).name, source_row, offset, why,
                                 detail, n_rows, raw_len_value, preview))
    return QuarantinePage(reason, page, per_page, total, reasons, out)


# -- duplicate clusters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupSource:
    """A view of duplicate clusters, normalised by `sql` to (doc_id, prior_run, cluster_id,
    cluster_size, survivor_id, is_duplicate).

    Recognised: a `doc_id` column and a `<p>cluster_id` column (or, for exact dedup, `<p>hash`
    with `<p>cluster_size`) for some prefix `<p>` (`minhash_`, `exact_`, or none), as the dedup
    stage writes them (`score_minhash_dedup`, `score_exact_dedup`, `dedup_clusters`,
    `dedup_exact_clusters`). Missing size, survivor and duplicate columns are derived (survivor:
    the smallest doc_id). Rows with a `prior_run` belong to an earlier run deduplicated against.
    """

    view: str
    key_column: str
    sql: str
    derived: tuple[str, ...]

    @property
    def is_sidecar(self) -> bool:
        return self.view.startswith("score_")


def _dedup_source(cat: Catalog, view: str, names: set[str], prefix: str, key: str) -> DedupSource:
    cid = f"CAST({quote_ident(key)} AS VARCHAR)"
    derived = []
    size, survivor, duplicate = prefix + "cluster_size", prefix + "survivor_id", prefix + "is_duplicate"
    if size in names:
        size_sql = f"CAST({quote_ident(size)} AS BIGINT)"
    else:
        size_sql = f"count(*) OVER (PARTITION BY {cid})"
        derived.append("cluster_size")
    if survivor in names:
        survivor_sql = f"CAST({quote_ident(survivor)} AS VARCHAR)"
    else:
        survivor_sql = f"min(CAST(doc_id AS VARCHAR)) OVER (PARTITION BY {cid})"
        derived.append("survivor_id")
    if duplicate in names:
        duplicate_sql = f"coalesce(CAST({quote_ident(duplicate)} AS BOOLEAN), false)"
    else:
        duplicate_sql = f"coalesce(CAST(doc_id AS VARCHAR) <> {survivor_sql}, false)"
        derived.append("is_duplicate")
    prior = "CAST(prior_run AS VARCHAR)" if "prior_run" in names else "NULL::VARCHAR"
    sql = (f"SELECT CAST(doc_id AS VARCHAR) AS doc_id, {prior} AS prior_run, {cid} AS cluster_id, "
           f"{size_sql} AS cluster_size, {survivor_sql} AS survivor_id, {duplicate_sql} AS is_duplicate "
           f"FROM {quote_ident(view)}")
    return DedupSource(view, key, sql, tuple(derived))


def dedup_sources(cat: Catalog) -> list[DedupSource]:
    """Every cluster view of the run: sidecars (score_*) first, then dedup_* tables."""
    sources = []
    for view in cat.unique_views():
        names = cat.column_names(view)
        if "doc_id" not in names:
            continue
        keys = [(n[: -len("cluster_id")], n) for n in sorted(names) if n.endswith("cluster_id")]
        if not keys:
            keys = [(n[: -len("cluster_size")], n[: -len("cluster_size")] + "hash") for n in sorted(names)
                    if n.endswith("cluster_size") and n[: -len("cluster_size")] + "hash" in names]
        if keys:
            prefix, key = keys[0]
            sources.append(_dedup_source(cat, view, names, prefix, key))
    return sorted(sources, key=lambda s: (not s.is_sidecar, s.view))


def dedup_source(cat: Catalog, view: str | None) -> DedupSource:
    sources = dedup_sources(cat)
    if not sources:
        raise NotFound("this run has no duplicate clusters")
    if view is None:  # near duplicates are the interesting ones to browse
        return next((s for s in sources if "minhash" in s.view), sources[0])
    for source in sources:
        if source.view == view:
            return source
    raise NotFound(f"{view!r} is not a dedup view of this run")


@dataclass(frozen=True)
class DedupSummary:
    view: str
    derived: tuple[str, ...]
    documents: int  # this run's documents in the view
    clusters: int  # clusters with more than one member
    clustered_documents: int
    duplicates: int  # this run's documents flagged as duplicates
    prior_run_documents: int
    largest: int
    size_counts: list[tuple[int, int]]  # (cluster size, number of clusters), sizes > 1


def dedup_summary(cat: Catalog, source: DedupSource) -> DedupSummary:
    documents, clusters, clustered, duplicates, prior, largest = cat.rows(
        f"SELECT count(*) FILTER (WHERE prior_run IS NULL), "
        f"count(DISTINCT cluster_id) FILTER (WHERE cluster_size > 1), "
        f"count(*) FILTER (WHERE cluster_size > 1 AND prior_run IS NULL), "
        f"count(*) FILTER (WHERE is_duplicate AND prior_run IS NULL), count(*) FILTER (WHERE prior_run IS NOT NULL), "
        f"coalesce(max(cluster_size), 0) FROM ({source.sql})")[0]
    sizes = cat.rows(
        f"SELECT size, count(*) FROM (SELECT cluster_id, max(cluster_size) AS size FROM ({source.sql}) "
        f"WHERE cluster_size > 1 GROUP BY cluster_id) GROUP BY size ORDER BY size")
    return DedupSummary(source.view, source.derived, int(documents), int(clusters or 0), int(clustered or 0),
                        int(duplicates or 0), int(prior or 0), int(largest or 0), [(int(s), int(n)) for s, n in sizes])


@dataclass(frozen=True)
class ClusterRow:
    cluster_id: str
    size: int
    survivor_id: str | None
    duplicates: int
    preview: str


@dataclass(frozen=True)
class ClusterPage:
    view: str
    page: int
    per_page: int
    total: int
    clusters: list[ClusterRow]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def dedup_clusters(cat: Catalog, source: DedupSource, *, page: int = 1, per_page: int = 20,
                   preview_chars: int = 160) -> ClusterPage:
    """Clusters with more than one member, largest first."""
    _check_page(page, per_page)
    total = int(cat.scalar(
        f"SELECT count(DISTINCT cluster_id) FROM ({source.sql}) WHERE cluster_size > 1") or 0)
    rows = cat.rows(
        f"SELECT cluster_id, max(cluster_size) AS size, min(survivor_id), count(*) FILTER (WHERE is_duplicate) "
        f"FROM ({source.sql}) WHERE cluster_size > 1 GROUP BY cluster_id "
        f"ORDER BY size DESC, cluster_id LIMIT ? OFFSET ?", [per_page, (page - 1) * per_page])
    texts = fetch_texts(cat, [r[2] for r in rows if r[2] is not None], preview_chars)
    clusters = [ClusterRow(str(cid), int(size), survivor, int(dups),
                           (texts.get(survivor) or (None, None, None, "", 0))[3] or "")
                for cid, size, survivor, dups in rows]
    return ClusterPage(source.view, page, per_page, total, clusters)


@dataclass(frozen=True)
class ClusterMember:
    doc_id: str
    prior_run: str | None
    is_survivor: bool
    is_duplicate: bool
    table: str | None
    source: str | None
    url: str | None
    text: str
    text_chars: int


def cluster_members(cat: Catalog, source: DedupSource, cluster_id: str, *, limit: int = 50,
                    max_chars: int = 2000) -> list[ClusterMember]:
    """The members of one cluster, survivor first (texts of prior runs' documents are not shown)."""
    if not 1 <= limit <= 500:
        raise InvalidParameter("limit must be between 1 and 500")
    rows = cat.rows(
        f"SELECT doc_id, prior_run, doc_id = survivor_id, is_duplicate FROM ({source.sql}) WHERE cluster_id = ? "
        f"ORDER BY doc_id = survivor_id DESC, is_duplicate, doc_id LIMIT ?", [cluster_id, limit])
    if not rows:
        raise NotFound(f"no cluster {cluster_id!r} in {source.view!r}")
    texts = fetch_texts(cat, [r[0] for r in rows if r[1] is None], max_chars)
    members = []
    for doc_id, prior_run, survivor, duplicate in rows:
        table, src, url, text, n = texts.get(doc_id, (None, None, None, "", 0)) if prior_run is None else (
            None, None, None, "", 0)
        members.append(ClusterMember(doc_id, prior_run, bool(survivor), bool(duplicate), table, src, url,
                                     text or "", int(n or 0)))
    return members


# -- selections and DSIR --------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionInfo:
    name: str
    view: str
    rows: int
    metadata: dict  # selections/<name>/selection.json when present (recipe, funnel, counts)

    @property
    def funnel(self) -> list[dict]:
        steps = self.metadata.get("funnel")
        return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []

    @property
    def is_dsir(self) -> bool:
        return bool(self.metadata.get("fit_hash")) and isinstance(self.metadata.get("targets"), list)

    @property
    def dsir_targets(self) -> list[str]:
        return [str(t.get("target")) for t in self.metadata.get("targets") or [] if isinstance(t, dict)]


def _view_for_dir(prefix: str, directory: str) -> str:
    return prefix + "_" + re.sub(r"\W", "_", directory)


def selections(cat: Catalog) -> list[SelectionInfo]:
    """Every `selections_*` view with a doc_id column, with its selection.json when present."""
    metadata_by_view: dict[str, tuple[str, dict]] = {}
    root = cat.run.root / "selections"
    if root.is_dir():
        for meta_path in sorted(root.glob("*/selection.json")):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(meta, dict):
                metadata_by_view[_view_for_dir("selections", meta_path.parent.name)] = (meta_path.parent.name, meta)
    found = []
    for view in cat.unique_views():
        if view.startswith("selections_") and "doc_id" in cat.column_names(view):
            rows = int(cat.scalar(f"SELECT count(DISTINCT doc_id) FROM {quote_ident(view)}") or 0)
            directory, meta = metadata_by_view.get(view, (view.removeprefix("selections_"), {}))
            found.append(SelectionInfo(str(meta.get("name") or directory), view, rows, meta))
    return found


def selection(cat: Catalog, name: str) -> SelectionInfo:
    for item in selections(cat):
        if name in (item.name, item.view):
            return item
    raise NotFound(f"this run has no selection {name!r}")


@dataclass(frozen=True)
class DistributionComparison:
    """One column's distribution over the pool (every row of its view), over a selection and,
    when the selection has one, over its random baseline (same size, same candidates)."""

    column: str
    view: str
    selection: str
    lo: float
    width: float
    pool: list[int]
    selected: list[int]
    baseline: list[int] | None
    pool_rows: int
    selected_rows: int
    baseline_rows: int
    pool_mean: float | None
    selected_mean: float | None

    @property
    def centers(self) -> list[float]:
        return [self.lo + (i + 0.5) * self.width for i in range(len(self.pool))]


def dsir_columns(cat: Catalog) -> list[tuple[str, str]]:
    """(view, column) for every numeric `dsir_*` column of a score view."""
    return [(view, c.name) for view in score_views(cat) for c in numeric_columns(cat, view)
            if c.name.startswith("dsir_")]


def _baseline_view(cat: Catalog) -> str | None:
    for view in cat.unique_views():
        if view.startswith("dsir_") and {"selection", "doc_id"} <= cat.column_names(view):
            return view
    return None


def compare_distribution(cat: Catalog, view: str, column: str, selection_view: str,
                         bins: int = 40) -> DistributionComparison:
    """Pool (all rows of `view`) against the rows of `view` whose doc_id is in the selection
    (and in the selection's random baseline, from `dsir_baselines`, when there is one)."""
    sel = selection(cat, selection_view) if selection_view.startswith("selections_") else None
    if sel is None or sel.view != selection_view:
        raise NotFound(f"{selection_view!r} is not a selection of this run")
    if "doc_id" not in cat.column_names(view):
        raise NotFound(f"view {view!r} has no doc_id column")
    col = cat.column(view, column)
    if not col.is_numeric:
        raise NotFound(f"column {column!r} of {view!r} is not numeric")
    pool_hist = histogram(cat, view, column, bins=bins)
    e = _value_expr(col)
    nbins = len(pool_hist.counts)

    def binned(members_sql: str, params: list) -> tuple[list[int], int, float | None]:
        counts = [0] * nbins
        if not nbins:
            return counts, 0, None
        condition = f"CAST(doc_id AS VARCHAR) IN ({members_sql})"
        for b, n in cat.rows(
            f"SELECT least(greatest(CAST(floor(({e} - ?) / ?) AS BIGINT), 0), ?) AS b, count(*) "
            f"FROM {quote_ident(view)} WHERE {e} IS NOT NULL AND {condition} GROUP BY b",
            [pool_hist.lo, pool_hist.width, nbins - 1] + params,
        ):
            counts[int(b)] += int(n)
        n, mean = cat.rows(f"SELECT count({e}), avg({e}) FROM {quote_ident(view)} WHERE {condition}", params)[0]
        return counts, int(n or 0), None if mean is None else float(mean)

    selected, selected_rows, selected_mean = binned(
        f"SELECT CAST(doc_id AS VARCHAR) FROM {quote_ident(selection_view)}", [])
    baseline, baseline_rows = None, 0
    baseline_view = _baseline_view(cat)
    if baseline_view is not None:
        counted = int(cat.scalar(f"SELECT count(*) FROM {quote_ident(baseline_view)} WHERE selection = ?",
                                 [sel.name]) or 0)
        if counted:
            baseline, baseline_rows, _ = binned(
                f"SELECT CAST(doc_id AS VARCHAR) FROM {quote_ident(baseline_view)} WHERE selection = ?", [sel.name])
    # The pool's bins leave out its 0.5 % tails; the selection is clamped into the edge bins so
    # that none of it disappears. Put the pool's tails there too, so they compare like for like.
    pool = list(pool_hist.counts)
    if pool:
        pool[0] += pool_hist.below
        pool[-1] += pool_hist.above
    return DistributionComparison(column, view, selection_view, pool_hist.lo, pool_hist.width, pool, selected,
                                  baseline, pool_hist.values, selected_rows, baseline_rows, pool_hist.mean,
                                  selected_mean)


def dsir_comparisons(cat: Catalog) -> list[DistributionComparison]:
    """For every DSIR selection: its targets' log-weight columns, pool vs selected vs baseline."""
    columns = dsir_columns(cat)
    found = []
    for sel in selections(cat):
        if not sel.is_dsir:
            continue
        wanted = {f"dsir_{t}_log_weight" for t in sel.dsir_targets}
        for view, column in columns:
            if column in wanted:
                found.append(compare_distribution(cat, view, column, sel.view))
    return found


@dataclass(frozen=True)
class FitDistribution:
    """A DSIR fit (the `dsir_fits` view: one row per distribution and bucket): for one target,
    its largest buckets with p_target and p_raw, and KL(target || raw) over all buckets."""

    view: str
    fit_hash: str
    target: str
    buckets: list[int]
    p_target: list[float]
    p_raw: list[float]
    kl_target_raw: float | None
    buckets_total: int


def _newest_fit_hash(cat: Catalog) -> str | None:
    pointer = cat.run.root / "dsir" / "fit.json"
    try:
        return str(json.loads(pointer.read_text(encoding="utf-8"))["fit_hash"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def dsir_fit_distributions(cat: Catalog, top: int = 30) -> list[FitDistribution]:
    found = []
    for view in cat.unique_views():
        if not view.startswith("dsir_") or not {"distribution", "bucket", "prob"} <= cat.column_names(view):
            continue
        has_hash = "fit_hash" in cat.column_names(view)
        fit_hash = None
        if has_hash:
            hashes = [str(r[0]) for r in cat.rows(f"SELECT DISTINCT fit_hash FROM {quote_ident(view)} ORDER BY 1")]
            newest = _newest_fit_hash(cat)
            fit_hash = newest if newest in hashes else (hashes[0] if hashes else None)
            if fit_hash is None:
                continue
        where, params = ("WHERE fit_hash = ?", [fit_hash]) if has_hash else ("", [])
        source = f"(SELECT distribution, bucket, CAST(prob AS DOUBLE) AS prob FROM {quote_ident(view)} {where})"
        targets = [str(r[0]) for r in cat.rows(
            f"SELECT DISTINCT distribution FROM {source} WHERE distribution <> 'raw' ORDER BY 1", params)]
        for target in targets:
            pair = (f"SELECT t.bucket, t.prob AS p_target, r.prob AS p_raw FROM {source} t "
                    f"LEFT JOIN {source} r ON r.bucket = t.bucket AND r.distribution = 'raw' "
                    f"WHERE t.distribution = ?")
            pair_params = params + params + [target]
            rows = cat.rows(f"SELECT * FROM ({pair}) ORDER BY p_target DESC, bucket LIMIT ?", pair_params + [top])
            kl, total = cat.rows(
                f"SELECT sum(p_target * (ln(p_target) - ln(p_raw))) FILTER (WHERE p_target > 0 AND p_raw > 0), "
                f"count(*) FROM ({pair})", pair_params)[0]
            found.append(FitDistribution(view, fit_hash or "", target, [int(r[0]) for r in rows],
                                         [float(r[1] or 0) for r in rows], [float(r[2] or 0) for r in rows],
                                         None if kl is None else float(kl), int(total or 0)))
    return found


_REPORT_CACHE: dict[tuple, dict | None] = {}


def dsir_selection_report(cat: Catalog, sel: SelectionInfo, *, max_docs: int = 2000) -> dict | None:
    """The DSIR stage's own report of a DSIR selection (`thresher.dsir.report.selection_report`):
    per target, KL(target || raw / random / selected) and the top buckets' p_target, p_raw,
    p_selected, p_random. It featurizes the selected and baseline documents (at most `max_docs`
    per target, a seeded subsample), reading Parquet only. Cached per selection file and fit.
    None when the selection is not DSIR's; {"error": ...} when the report cannot be computed."""
    if not sel.is_dsir:
        return None
    directory = cat.run.root / "selections" / sel.name
    try:
        stamp = (directory / "selected.parquet").stat().st_mtime_ns
    except OSError:
        return None
    key = (str(cat.run.root), sel.name, stamp, sel.metadata.get("fit_hash"), max_docs)
    if key not in _REPORT_CACHE:
        try:
            from thresher.dsir.fit import load_fit
            from thresher.dsir.report import selection_report

            fitted = load_fit(cat.run, str(sel.metadata["fit_hash"]))
            report = selection_report(cat.run, fitted, sel.metadata, max_docs=max_docs)
        except Exception as exc:  # a report that cannot be made is said on the panel, not fatal to it
            report = {"error": f"{type(exc).__name__}: {exc}"}
        if len(_REPORT_CACHE) >= 32:
            _REPORT_CACHE.clear()
        _REPORT_CACHE[key] = report
    return _REPORT_CACHE[key]


# -- judges ---------------------------------------------------------------------------------------


def judge_views(cat: Catalog) -> list[str]:
    """Views of judge / IFD stages: the name says judge or ifd, or a score view has judge_* columns."""
    found = []
    for view in cat.unique_views():
        names = cat.column_names(view)
        by_name = re.search(r"judge|(^|_)ifd($|_)", view) is not None
        by_column = view.startswith("score_") and any(n.startswith("judge_") for n in names)
        if (by_name or by_column) and numeric_columns(cat, view):
            found.append(view)
    # The judges' own sidecars first (the panel opens on the first); heads distilled from them after.
    return sorted(found, key=lambda v: (not v.startswith("score_judge_"), found.index(v)))


@dataclass(frozen=True)
class Calibration:
    """Mean of `y` per bin of `x`, the bins' counts, a binned x/y heatmap and correlations."""

    x: str
    y: str
    x_centers: list[float]
    y_mean: list[float | None]
    counts: list[int]
    heat_x: list[float]
    heat_y: list[float]
    heat: list[list[int]]
    pearson: float | None
    spearman: float | None
    pairs: int


@dataclass(frozen=True)
class JudgeView:
    view: str
    rows: int
    score_columns: list[str]
    histograms: list[Histogram]
    unparsed: dict[str, int]  # per score column: rows with raw output but no score
    calibration: Calibration | None


_REFERENCE = re.compile(r"reference|human|gold|label|target|truth")
_RAW = re.compile(r"raw|output|response|completion")


def _calibration(cat: Catalog, view: str, x: Column, y: Column, bins: int = 12) -> Calibration | None:
    ex, ey = _value_expr(x), _value_expr(y)
    hx, hy = histogram(cat, view, x.name, bins=bins), histogram(cat, view, y.name, bins=bins)
    if not hx.counts or not hy.counts:
        return None
    nx, ny = len(hx.counts), len(hy.counts)
    bx = f"least(greatest(CAST(floor(({ex} - ?) / ?) AS BIGINT), 0), ?)"
    by = f"least(greatest(CAST(floor(({ey} - ?) / ?) AS BIGINT), 0), ?)"
    src = f"FROM {quote_ident(view)} WHERE {ex} IS NOT NULL AND {ey} IS NOT NULL"
    x_params, y_params = [hx.lo, hx.width, nx - 1], [hy.lo, hy.width, ny - 1]
    means = {int(b): (int(n), m) for b, n, m in cat.rows(
        f"SELECT {bx} AS b, count(*), avg({ey}) {src} GROUP BY b", x_params)}
    heat = [[0] * nx for _ in range(ny)]
    for b1, b2, n in cat.rows(f"SELECT {bx} AS b1, {by} AS b2, count(*) {src} GROUP BY b1, b2",
                              x_params + y_params):
        heat[int(b2)][int(b1)] = int(n)
    pearson, pairs = cat.rows(f"SELECT corr({ex}, {ey}), count(*) {src}")[0]
    spearman = cat.scalar(
        f"SELECT corr(rx, ry) FROM (SELECT rank() OVER (ORDER BY x) AS rx, rank() OVER (ORDER BY y) AS ry "
        f"FROM (SELECT {ex} AS x, {ey} AS y {src}))")

    def clean(v: Any) -> float | None:
        return None if v is None or not math.isfinite(float(v)) else float(v)

    return Calibration(
        x=x.name, y=y.name, x_centers=hx.centers, y_mean=[clean(means.get(i, (0, None))[1]) for i in range(nx)],
        counts=[means.get(i, (0, None))[0] for i in range(nx)], heat_x=hx.centers, heat_y=hy.centers, heat=heat,
        pearson=clean(pearson), spearman=clean(spearman), pairs=int(pairs or 0),
    )


def judge_view(cat: Catalog, view: str) -> JudgeView:
    if view not in judge_views(cat):
        raise NotFound(f"{view!r} is not a judge view of this run")
    columns = numeric_columns(cat, view)
    rows = int(cat.scalar(f"SELECT count(*) FROM {quote_ident(view)}"))
    hists = histograms(cat, view, [c.name for c in columns], bins=30)
    text_columns = [c.name for c in cat.columns(view) if c.base_type == "VARCHAR" and _RAW.search(c.name)]
    unparsed = {}
    if text_columns:
        raw = quote_ident(text_columns[0])
        for c in columns:
            unparsed[c.name] = int(cat.scalar(
                f"SELECT count(*) FROM {quote_ident(view)} WHERE {_value_expr(c)} IS NULL AND {raw} IS NOT NULL"))
    calibration = None
    if len(columns) >= 2:
        references = [c for c in columns if _REFERENCE.search(c.name)]
        x = references[0] if references else columns[0]
        y = next(c for c in columns if c is not x)
        calibration = _calibration(cat, view, x, y)
    return JudgeView(view, rows, [c.name for c in columns], hists, unparsed, calibration)


# -- Evol-Instruct survival -----------------------------------------------------------------------


def evol_views(cat: Catalog) -> list[str]:
    return [v for v in cat.unique_views() if re.search(r"(^|_)(evol|augment)", v)]


_ROUND = ("round", "evol_round", "generation", "depth", "iteration", "step", "turn")
_KEPT = ("survived", "kept", "accepted", "passed", "is_survivor", "survives", "keep")
_DROPPED = ("eliminated", "rejected", "dropped", "is_eliminated", "removed")
_REASON = ("elimination_reason", "eliminated_reason", "elimination", "drop_reason", "rejection_reason", "reason")
_KIND = ("evol_type", "evolution", "method", "operation", "mutation", "strategy", "kind")


@dataclass(frozen=True)
class EvolSurvival:
    view: str
    rows: int
    round_column: str | None
    kept_expr_column: str | None
    per_round: list[tuple[str, int, int]]  # (round, candidates, survived)
    reasons: list[tuple[str, int]]
    per_kind: list[tuple[str, int, int]]  # (evolution kind, candidates, survived)
    columns: list[str]


def evol_survival(cat: Catalog, view: str) -> EvolSurvival:
    if view not in evol_views(cat):
        raise NotFound(f"{view!r} is not an Evol-Instruct view of this run")
    names = [c.name for c in cat.columns(view)]
    lower = {n.lower(): n for n in names}

    def first(candidates: tuple[str, ...]) -> str | None:
        return next((lower[c] for c in candidates if c in lower), None)

    round_col, reason_col, kind_col = first(_ROUND), first(_REASON), first(_KIND)
    kept_col, dropped_col = first(_KEPT), first(_DROPPED)
    if kept_col:
        kept = f"coalesce(CAST({quote_ident(kept_col)} AS BOOLEAN), false)"
    elif dropped_col:
        kept = f"NOT coalesce(CAST({quote_ident(dropped_col)} AS BOOLEAN), false)"
    elif reason_col:
        kept = f"({quote_ident(reason_col)} IS NULL OR CAST({quote_ident(reason_col)} AS VARCHAR) = '')"
    else:
        kept = None
    source = quote_ident(view)
    rows = int(cat.scalar(f"SELECT count(*) FROM {source}"))
    kept_sum = f"count(*) FILTER (WHERE {kept})" if kept else "NULL"

    def grouped(col: str | None) -> list[tuple[str, int, int]]:
        if col is None:
            return []
        return [(str(g), int(n), int(k or 0)) for g, n, k in cat.rows(
            f"SELECT * FROM (SELECT CAST({quote_ident(col)} AS VARCHAR) AS g, count(*), {kept_sum} "
            f"FROM {source} GROUP BY 1) ORDER BY try_cast(g AS DOUBLE) NULLS LAST, g")]

    reasons = []
    if reason_col:
        reasons = [(str(r), int(n)) for r, n in cat.rows(
            f"SELECT CAST({quote_ident(reason_col)} AS VARCHAR) AS r, count(*) AS n FROM {source} "
            f"WHERE r IS NOT NULL AND r <> '' GROUP BY r ORDER BY n DESC, r")]
    return EvolSurvival(view, rows, round_col, kept_col or dropped_col or reason_col, grouped(round_col), reasons,
                        grouped(kind_col), names)


# -- previews -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TablePreview:
    view: str
    rows: int
    columns: list[Column]
    head: list[list[str]]


def table_preview(cat: Catalog, view: str, limit: int = 10, max_chars: int = 120) -> TablePreview:
    columns = cat.columns(view)
    rows = int(cat.scalar(f"SELECT count(*) FROM {quote_ident(view)}"))
    head = cat.rows(f"SELECT * FROM {quote_ident(view)} LIMIT ?", [limit])

    def show(v: Any) -> str:
        if v is None:
            return "NULL"
        text = v.decode("utf-8", errors="replace") if isinstance(v, bytes | bytearray) else str(v)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    return TablePreview(view, rows, columns, [[show(v) for v in r] for r in head])
