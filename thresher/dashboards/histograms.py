"""Score histograms and quantile bands: the distribution of every numeric column of every score view.

Bins are computed in SQL (two queries for all columns of a view), never by fetching values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from thresher.dashboards.catalog import Catalog, Column, InvalidParameter, NotFound, quote_ident, value_expr
from thresher.storage.catalog import score_view_name


def score_views(cat: Catalog) -> list[str]:
    """The view of the newest sidecar of every scorer in the run (`score_<name>`, as the catalog
    names it; the versioned aliases `score_<name>_v<version>` left out), by scorer name."""
    return [v for v in (score_view_name(key, versioned=False) for key in cat.score_keys().values())
            if "doc_id" in cat.column_names(v)]


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
    table: str | None = None  # the data table whose rows are counted; None: the whole view

    @property
    def missing(self) -> int:
        return self.rows - self.values

    @property
    def edges(self) -> list[float]:
        return [self.lo + i * self.width for i in range(len(self.counts) + 1)]

    @property
    def centers(self) -> list[float]:
        return [self.lo + (i + 0.5) * self.width for i in range(len(self.counts))]


def bin_layout(column: Column, n: int, vmin: float, vmax: float, q_lo: float | None, q_hi: float | None,
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


def table_rows_of(cat: Catalog, view: str, table: str | None) -> str:
    """The rows of `view` that belong to data table `table` (all rows when None), as a FROM source.
    Score sidecars hold documents and instructions alike; their doc_ids say which is which."""
    if table is None:
        return quote_ident(view)
    if table not in cat.data_tables():
        raise NotFound(f"this run has no table {table!r}")
    if "doc_id" not in cat.column_names(view):
        raise NotFound(f"view {view!r} has no doc_id column to split by table")
    return (f"(SELECT * FROM {quote_ident(view)} WHERE CAST(doc_id AS VARCHAR) IN "
            f"(SELECT CAST(doc_id AS VARCHAR) FROM {quote_ident(table)}))")


def view_tables(cat: Catalog, view: str) -> list[str]:
    """The data tables that have rows in `view` (e.g. ['documents', 'instructions'])."""
    if "doc_id" not in cat.column_names(view):
        return []
    return [t for t in cat.data_tables()
            if cat.scalar(f"SELECT EXISTS (SELECT 1 FROM {table_rows_of(cat, view, t)})")]


def histograms(cat: Catalog, view: str, columns: Sequence[str] | None = None, bins: int = 40,
               table: str | None = None) -> list[Histogram]:
    """Histograms of numeric columns of `view` (all of them by default), in two queries; with
    `table`, of that data table's rows only."""
    if not 1 <= bins <= 500:
        raise InvalidParameter("bins must be between 1 and 500")
    wanted = numeric_columns(cat, view) if columns is None else [cat.column(view, c) for c in columns]
    wanted = [c for c in wanted if c.is_numeric]
    if not wanted:
        return []
    source = table_rows_of(cat, view, table)
    parts = ["count(*)"]
    for column in wanted:
        e = value_expr(column)
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
                        bin_layout(column, int(n), float(vmin), float(vmax), q_lo, q_hi, bins)))

    selects, params = [], []
    for i, (column, _n, *_rest, layout) in enumerate(layouts):
        if layout is None:
            continue
        lo, width, nbins, r_lo, r_hi = layout
        e = value_expr(column)
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
                                    column.is_integer, table))
            continue
        lo, width, nbins, _, _ = layout
        result.append(Histogram(
            view=view, column=column.name, type=column.type, rows=rows, values=n, min=vmin, max=vmax, mean=mean,
            lo=lo, width=width, counts=[counted.get((i, b), 0) for b in range(nbins)],
            below=counted.get((i, -1), 0), above=counted.get((i, nbins), 0), integer=column.is_integer,
            table=table,
        ))
    return result


def histogram(cat: Catalog, view: str, column: str, bins: int = 40, table: str | None = None) -> Histogram:
    return histograms(cat, view, [column], bins=bins, table=table)[0]



@dataclass(frozen=True)
class Band:
    lo: float
    hi: float
    rows: int
    label: str


def score_bands(cat: Catalog, view: str, column: str, n: int = 5, table: str | None = None) -> list[Band]:
    """Quantile bands of a column (closed ranges [lo, hi]) with the rows each holds; with `table`,
    of that data table's rows only."""
    if not 1 <= n <= 20:
        raise InvalidParameter("bands must be between 1 and 20")
    col = cat.column(view, column)
    if not col.is_numeric:
        raise NotFound(f"column {column!r} of {view!r} is not numeric")
    e = value_expr(col)
    points = [i / n for i in range(n + 1)]
    source = table_rows_of(cat, view, table)
    quantiles = cat.scalar(f"SELECT quantile_disc({e}, ?::DOUBLE[]) FROM {source}", [points])
    if not quantiles:
        return []
    edges = sorted(set(float(x) for x in quantiles if x is not None))
    if len(edges) == 1:
        edges = edges * 2
    ranges = list(zip(edges[:-1], edges[1:]))
    counts = cat.rows(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {e} BETWEEN ? AND ?)" for _ in ranges)
        + f" FROM {source}", [x for r in ranges for x in r])[0]
    step = 100 / len(ranges)
    return [Band(lo, hi, int(c), f"P{round(i * step)}–P{round((i + 1) * step)}")
            for i, ((lo, hi), c) in enumerate(zip(ranges, counts))]
