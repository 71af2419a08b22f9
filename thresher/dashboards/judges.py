"""Judges: each judge sidecar of the run, read by the columns the judge declares, and its calibrations.

Which judges exist and what their columns mean comes from the scorer registry: every registered
scorer class with a `dashboard_columns()` declaration of `JudgeColumns` (thresher.judges.views)
is a judge, and its sidecar is in the run when the catalog has its view. Score and calibration
are paired only through `thresher judge calibrate`'s tables (a real reference label per row,
`CALIBRATION`); with none, the panel shows no calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from thresher.dashboards.catalog import Catalog, Column, NotFound, quote_ident
from thresher.dashboards.histograms import Histogram, bin_layout, histograms
from thresher.judges.views import CALIBRATION, JudgeColumns
from thresher.scorers.registry import available_scorers, scorer_class
from thresher.storage.catalog import score_view_name


@lru_cache(maxsize=1)
def judge_declarations() -> tuple[JudgeColumns, ...]:
    """Every registered scorer's `JudgeColumns`, in registry order, one per sidecar name (a judge
    class declares its sidecars in both modes, and may be registered under both names)."""
    found: dict[str, JudgeColumns] = {}
    for name in available_scorers():
        try:
            cls = scorer_class(name)
        except (ImportError, AttributeError, ValueError):  # an optional dependency missing here: nothing to show
            continue
        declare = getattr(cls, "dashboard_columns", None)
        for columns in declare() if callable(declare) else ():
            if isinstance(columns, JudgeColumns):
                found.setdefault(columns.name, columns)
    return tuple(found.values())


@dataclass(frozen=True)
class JudgeSidecar:
    columns: JudgeColumns
    view: str  # the catalog's view of the newest sidecar
    key: str  # "<name>@<version>" of that sidecar


def judge_sidecars(cat: Catalog) -> list[JudgeSidecar]:
    """The declared judges whose sidecar this run has (with the declared score column)."""
    keys = cat.score_keys()
    found = []
    for columns in judge_declarations():
        key = keys.get(columns.name)
        if key is None:
            continue
        view = score_view_name(key, versioned=False)
        if cat.has_columns(view, "doc_id", columns.score):
            found.append(JudgeSidecar(columns, view, key))
    return found


def judge_views(cat: Catalog) -> list[str]:
    return [s.view for s in judge_sidecars(cat)]


def judge_sidecar(cat: Catalog, view: str) -> JudgeSidecar:
    for sidecar in judge_sidecars(cat):
        if sidecar.view == view:
            return sidecar
    raise NotFound(f"{view!r} is not a judge view of this run")


# -- calibration ----------------------------------------------------------------------------------


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
    spearman: float | None  # on average ranks (ties share theirs), as thresher.judges.metrics
    pairs: int


@dataclass(frozen=True)
class JudgeCalibration:
    """One `thresher judge calibrate` result for a judge: the stage's own metrics and confusion
    matrix, and the judge's score against the reference label over its rows."""

    name: str
    judge_version: str
    reference: str
    metrics: dict[str, Any]  # CALIBRATION.metrics, as the stage computed them
    confusion: list[tuple[int, int, int]]  # (label, rounded score, rows)
    plot: Calibration | None  # x: the label, y: the judge's score


def _clean(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _axis(n: int, vmin: float, vmax: float, integral: bool, bins: int) -> tuple[float, float, int]:
    lo, width, count, _, _ = bin_layout(Column("v", "BIGINT" if integral else "DOUBLE"), n, vmin, vmax, None, None,
                                        bins)
    return lo, width, count


def pair_plot(cat: Catalog, source: str, params: list, x_name: str, y_name: str, bins: int = 12) -> Calibration | None:
    """Binned (x, y) pairs of `source`, a query over columns `x` and `y` (finite, non-null)."""
    src = f"FROM ({source}) WHERE isfinite(x) AND isfinite(y)"
    n, x0, x1, y0, y1, x_int, y_int = cat.rows(
        f"SELECT count(*), min(x), max(x), min(y), max(y), bool_and(x = round(x)), bool_and(y = round(y)) {src}",
        params)[0]
    if not n:
        return None
    xlo, xw, nx = _axis(int(n), float(x0), float(x1), bool(x_int), bins)
    ylo, yw, ny = _axis(int(n), float(y0), float(y1), bool(y_int), bins)
    bx = "least(greatest(CAST(floor((x - ?) / ?) AS BIGINT), 0), ?)"
    by = "least(greatest(CAST(floor((y - ?) / ?) AS BIGINT), 0), ?)"
    x_params, y_params = [xlo, xw, nx - 1], [ylo, yw, ny - 1]
    means = {int(b): (int(c), m) for b, c, m in cat.rows(
        f"SELECT {bx} AS b, count(*), avg(y) {src} GROUP BY b", x_params + params)}
    heat = [[0] * nx for _ in range(ny)]
    for b1, b2, c in cat.rows(f"SELECT {bx} AS b1, {by} AS b2, count(*) {src} GROUP BY b1, b2",
                              x_params + y_params + params):
        heat[int(b2)][int(b1)] = int(c)
    pearson = cat.scalar(f"SELECT corr(x, y) {src}", params)
    spearman = cat.scalar(
        "SELECT corr(rx, ry) FROM (SELECT rank() OVER (ORDER BY x) + (count(*) OVER (PARTITION BY x) - 1) / 2.0 "
        f"AS rx, rank() OVER (ORDER BY y) + (count(*) OVER (PARTITION BY y) - 1) / 2.0 AS ry {src})", params)
    x_centers = [xlo + (i + 0.5) * xw for i in range(nx)]
    return Calibration(
        x=x_name, y=y_name, x_centers=x_centers, y_mean=[_clean(means.get(i, (0, None))[1]) for i in range(nx)],
        counts=[means.get(i, (0, None))[0] for i in range(nx)], heat_x=x_centers,
        heat_y=[ylo + (i + 0.5) * yw for i in range(ny)], heat=heat, pearson=_clean(pearson),
        spearman=_clean(spearman), pairs=int(n),
    )


def calibrations(cat: Catalog, columns: JudgeColumns) -> list[JudgeCalibration]:
    """The judge's calibrations in this run, newest first; [] when it has none."""
    c = CALIBRATION
    if not (cat.has_columns(c.metrics_view, c.calibration, c.judge, c.judge_version, c.reference, *c.metrics)
            and cat.has_columns(c.rows_view, c.calibration, c.label, c.score)):
        return []
    q = quote_ident
    order = "created_at DESC, " if "created_at" in cat.column_names(c.metrics_view) else ""
    metric_sql = ", ".join(q(m) for m in c.metrics)
    found = []
    for name, version, reference, *values in cat.rows(
        f"SELECT {q(c.calibration)}, {q(c.judge_version)}, {q(c.reference)}, {metric_sql} "
        f"FROM {q(c.metrics_view)} WHERE {q(c.judge)} = ? ORDER BY {order}{q(c.calibration)}", [columns.name]
    ):
        confusion = []
        if cat.has_columns(c.confusion_view, c.calibration, c.label, c.predicted, c.count):
            confusion = [(int(a), int(p), int(n)) for a, p, n in cat.rows(
                f"SELECT {q(c.label)}, {q(c.predicted)}, {q(c.count)} FROM {q(c.confusion_view)} "
                f"WHERE {q(c.calibration)} = ? ORDER BY 1, 2", [name])]
        source = (f"SELECT CAST({q(c.label)} AS DOUBLE) AS x, CAST({q(c.score)} AS DOUBLE) AS y "
                  f"FROM {q(c.rows_view)} WHERE {q(c.calibration)} = ? AND {q(c.label)} IS NOT NULL "
                  f"AND {q(c.score)} IS NOT NULL")
        plot = pair_plot(cat, source, [name], "reference label", f"{columns.name} score")
        found.append(JudgeCalibration(str(name), str(version), str(reference), dict(zip(c.metrics, values)),
                                      confusion, plot))
    return found


# -- one judge's panel ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnparsedRow:
    doc_id: str
    parse_error: str | None
    raw: str | None  # the model's raw output (first characters), kept because parsing failed


@dataclass(frozen=True)
class JudgeView:
    view: str
    key: str
    columns: JudgeColumns
    rows: int  # rows of the sidecar
    not_sampled: int  # outside the judge's sample: not judged by design
    scored: int  # rows with a score
    parse_errors: dict[str, int]  # reason -> rows, not_sampled left out
    truncated: int | None  # judged rows whose input was cut to the token budget
    injections: dict[str, int]  # kind of injection pattern -> rows
    histograms: list[Histogram]
    unparsed: list[UnparsedRow]  # a few judged rows without a score, with their raw output
    calibrations: list[JudgeCalibration]

    @property
    def judged(self) -> int:
        return self.rows - self.not_sampled

    @property
    def score_columns(self) -> list[str]:
        return [h.column for h in self.histograms]


def judge_view(cat: Catalog, view: str, *, bins: int = 30, examples: int = 5, raw_chars: int = 400) -> JudgeView:
    sidecar = judge_sidecar(cat, view)
    j = sidecar.columns
    q, source = quote_ident, quote_ident(view)
    names = cat.column_names(view)

    def has(column: str | None) -> bool:
        return column is not None and column in names

    rows = cat.count(view)
    not_sampled, parse_errors = 0, {}
    if has(j.parse_error):
        for reason, n in cat.rows(f"SELECT {q(j.parse_error)} AS r, count(*) AS n FROM {source} "
                                  "WHERE r IS NOT NULL GROUP BY r ORDER BY n DESC, r"):
            if reason == j.not_sampled:
                not_sampled = int(n)
            else:
                parse_errors[str(reason)] = int(n)
    judged = f"{q(j.parse_error)} IS DISTINCT FROM ?" if has(j.parse_error) else "true"
    judged_params = [j.not_sampled] if has(j.parse_error) else []
    scored = int(cat.scalar(f"SELECT count({q(j.score)}) FROM {source}") or 0)
    truncated = None
    if has(j.truncated):
        truncated = int(cat.scalar(f"SELECT count(*) FILTER (WHERE {q(j.truncated)}) FROM {source} WHERE {judged}",
                                   judged_params) or 0)
    injections = {}
    if has(j.injection):
        injections = {str(k): int(n) for k, n in cat.rows(
            f"SELECT {q(j.injection)} AS k, count(*) AS n FROM {source} WHERE k IS NOT NULL GROUP BY k "
            "ORDER BY n DESC, k")}
    unparsed = []
    if examples:
        raw = f"left(CAST({q(j.raw)} AS VARCHAR), ?)" if has(j.raw) else "NULL"
        error = q(j.parse_error) if has(j.parse_error) else "NULL"
        unparsed = [UnparsedRow(str(d), e, r) for d, e, r in cat.rows(
            f"SELECT CAST(doc_id AS VARCHAR), {error}, {raw} FROM {source} WHERE {q(j.score)} IS NULL AND {judged} "
            "ORDER BY doc_id LIMIT ?", ([raw_chars] if has(j.raw) else []) + judged_params + [examples])]
    hists = histograms(cat, view, [c for c in j.histogram_columns if has(c)], bins=bins)
    return JudgeView(view, sidecar.key, j, rows, not_sampled, scored, parse_errors, truncated, injections, hists,
                     unparsed, calibrations(cat, j))
