"""Selections and DSIR: what each selection holds, DSIR's fit, its log weights pool vs selected vs
random baseline, and the DSIR stage's own selection report.

Selections are the catalog's `selections_<name>` views with their `selection.json`; DSIR's views
and columns are the ones the stage declares (`thresher.dsir.views.DSIR`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from thresher.dashboards.catalog import Catalog, NotFound, quote_ident, value_expr
from thresher.dashboards.histograms import histogram
from thresher.dsir.views import DSIR, latest_fit_pointer
from thresher.storage.catalog import score_view_name, stage_view_name

SELECTIONS_PREFIX = "selections_"  # the catalog's view of selections/<name>/


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
        return bool(self.metadata.get(DSIR.meta_fit_hash)) and isinstance(self.metadata.get(DSIR.meta_targets), list)

    @property
    def dsir_targets(self) -> list[str]:
        return [str(t.get("target")) for t in self.metadata.get(DSIR.meta_targets) or [] if isinstance(t, dict)]


def _view_for_dir(directory: str) -> str:
    return stage_view_name("selections", directory)


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
                metadata_by_view[_view_for_dir(meta_path.parent.name)] = (meta_path.parent.name, meta)
    found = []
    for view in cat.unique_views():
        if view.startswith(SELECTIONS_PREFIX) and "doc_id" in cat.column_names(view):
            rows = int(cat.scalar(f"SELECT count(DISTINCT doc_id) FROM {quote_ident(view)}") or 0)
            directory, meta = metadata_by_view.get(view, (view.removeprefix(SELECTIONS_PREFIX), {}))
            found.append(SelectionInfo(str(meta.get("name") or directory), view, rows, meta))
    return found


def selection(cat: Catalog, name: str) -> SelectionInfo:
    for item in selections(cat):
        if name in (item.name, item.view):
            return item
    raise NotFound(f"this run has no selection {name!r}")


# -- DSIR -----------------------------------------------------------------------------------------


def dsir_weights_view(cat: Catalog) -> str | None:
    """The view of the run's newest DSIR weights sidecar, if it has one."""
    key = cat.score_keys().get(DSIR.scorer)
    return None if key is None else score_view_name(key, versioned=False)


def dsir_targets(cat: Catalog) -> list[str]:
    """The targets of the fits in `dsir_fits` (every distribution but p_raw)."""
    if not cat.has_columns(DSIR.fits_view, DSIR.distribution):
        return []
    return [str(r[0]) for r in cat.rows(
        f"SELECT DISTINCT {quote_ident(DSIR.distribution)} FROM {quote_ident(DSIR.fits_view)} "
        f"WHERE {quote_ident(DSIR.distribution)} <> ? ORDER BY 1", [DSIR.raw])]


def dsir_columns(cat: Catalog) -> list[tuple[str, str]]:
    """(view, column) of every target's log-weight column in the DSIR sidecar."""
    view = dsir_weights_view(cat)
    if view is None:
        return []
    names = cat.column_names(view)
    return [(view, DSIR.weight_column(t)) for t in dsir_targets(cat) if DSIR.weight_column(t) in names]


def _selection_weights_view(cat: Catalog, sel: SelectionInfo) -> str | None:
    """The sidecar a DSIR selection ranked: `weights` in its selection.json (else the newest)."""
    key = sel.metadata.get(DSIR.meta_weights)
    if not isinstance(key, str):
        return dsir_weights_view(cat)
    newest = cat.score_keys().get(key.partition("@")[0])
    view = score_view_name(key, versioned=newest != key)
    return view if cat.has(view) else None


def _has_baselines(cat: Catalog) -> bool:
    return cat.has_columns(DSIR.baselines_view, DSIR.baseline_selection, DSIR.baseline_doc_id)


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


def compare_distribution(cat: Catalog, view: str, column: str, selection_view: str,
                         bins: int = 40) -> DistributionComparison:
    """Pool (all rows of `view`) against the rows of `view` whose doc_id is in the selection
    (and in the selection's random baseline, from `dsir_baselines`, when there is one)."""
    sel = selection(cat, selection_view) if selection_view.startswith(SELECTIONS_PREFIX) else None
    if sel is None or sel.view != selection_view:
        raise NotFound(f"{selection_view!r} is not a selection of this run")
    if "doc_id" not in cat.column_names(view):
        raise NotFound(f"view {view!r} has no doc_id column")
    col = cat.column(view, column)
    if not col.is_numeric:
        raise NotFound(f"column {column!r} of {view!r} is not numeric")
    pool_hist = histogram(cat, view, column, bins=bins)
    e = value_expr(col)
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
    if sel.is_dsir and _has_baselines(cat):
        members = (f"SELECT CAST({quote_ident(DSIR.baseline_doc_id)} AS VARCHAR) FROM "
                   f"{quote_ident(DSIR.baselines_view)} WHERE {quote_ident(DSIR.baseline_selection)} = ?")
        if int(cat.scalar(f"SELECT count(*) FROM ({members})", [sel.name]) or 0):
            baseline, baseline_rows, _ = binned(members, [sel.name])
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
    found = []
    for sel in selections(cat):
        view = _selection_weights_view(cat, sel) if sel.is_dsir else None
        if view is None:
            continue
        names = cat.column_names(view)
        for target in sel.dsir_targets:
            if DSIR.weight_column(target) in names:
                found.append(compare_distribution(cat, view, DSIR.weight_column(target), sel.view))
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
    try:
        return str(json.loads(latest_fit_pointer(cat.run).read_text(encoding="utf-8"))[DSIR.fit_hash])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def dsir_fit_distributions(cat: Catalog, top: int = 30) -> list[FitDistribution]:
    """Per target of the run's newest fit (else its first): top buckets and KL(target || raw)."""
    view = DSIR.fits_view
    if not cat.has_columns(view, DSIR.fit_hash, DSIR.distribution, DSIR.bucket, DSIR.prob):
        return []
    hashes = [str(r[0]) for r in cat.rows(
        f"SELECT DISTINCT {quote_ident(DSIR.fit_hash)} FROM {quote_ident(view)} ORDER BY 1")]
    newest = _newest_fit_hash(cat)
    fit_hash = newest if newest in hashes else (hashes[0] if hashes else None)
    if fit_hash is None:
        return []
    source = (f"(SELECT {quote_ident(DSIR.distribution)} AS distribution, {quote_ident(DSIR.bucket)} AS bucket, "
              f"CAST({quote_ident(DSIR.prob)} AS DOUBLE) AS prob FROM {quote_ident(view)} "
              f"WHERE {quote_ident(DSIR.fit_hash)} = ?)")
    targets = [str(r[0]) for r in cat.rows(
        f"SELECT DISTINCT distribution FROM {source} WHERE distribution <> ? ORDER BY 1", [fit_hash, DSIR.raw])]
    found = []
    for target in targets:
        pair = (f"SELECT t.bucket, t.prob AS p_target, r.prob AS p_raw FROM {source} t "
                f"LEFT JOIN {source} r ON r.bucket = t.bucket AND r.distribution = ? WHERE t.distribution = ?")
        params = [fit_hash, fit_hash, DSIR.raw, target]
        rows = cat.rows(f"SELECT * FROM ({pair}) ORDER BY p_target DESC, bucket LIMIT ?", params + [top])
        kl, total = cat.rows(
            f"SELECT sum(p_target * (ln(p_target) - ln(p_raw))) FILTER (WHERE p_target > 0 AND p_raw > 0), "
            f"count(*) FROM ({pair})", params)[0]
        found.append(FitDistribution(view, fit_hash, target, [int(r[0]) for r in rows],
                                     [float(r[1] or 0) for r in rows], [float(r[2] or 0) for r in rows],
                                     None if kl is None else float(kl), int(total or 0)))
    return found


def other_dsir_tables(cat: Catalog) -> list[str]:
    """The DSIR stage's tables the panel does not chart (listed by name)."""
    shown = {DSIR.fits_view} if dsir_fit_distributions(cat) else set()
    return [v for v in cat.unique_views() if v.startswith("dsir_") and v not in shown]


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
    key = (str(cat.run.root), sel.name, stamp, sel.metadata.get(DSIR.meta_fit_hash), max_docs)
    if key not in _REPORT_CACHE:
        try:
            from thresher.dsir.fit import load_fit
            from thresher.dsir.report import selection_report

            fitted = load_fit(cat.run, str(sel.metadata[DSIR.meta_fit_hash]))
            report = selection_report(cat.run, fitted, sel.metadata, max_docs=max_docs)
        except Exception as exc:  # a report that cannot be made is said on the panel, not fatal to it
            report = {"error": f"{type(exc).__name__}: {exc}"}
        if len(_REPORT_CACHE) >= 32:
            _REPORT_CACHE.clear()
        _REPORT_CACHE[key] = report
    return _REPORT_CACHE[key]
