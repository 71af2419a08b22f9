"""The overview: the run's manifest, its stages, and the funnel from rows read to rows selected."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from thresher.dashboards.catalog import Catalog, NotFound, quote_ident
from thresher.dashboards.dedup import dedup_sources
from thresher.dashboards.selections import selections
from thresher.storage.run_dir import DATA_TABLES, RunDir


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
    share: float | None = None  # of the funnel's first step (its table's rows in), computed here


@dataclass(frozen=True)
class Funnel:
    rows_in: int | None
    rows_written: int | None
    rows_quarantined: int | None
    written_by_table: dict[str, int]
    quarantine_reasons: dict[str, int]
    steps: list[FunnelStep]
    table: str | None = None  # None: every table together (the reconciliation line only, never a chart)

    @property
    def reconciled(self) -> bool | None:
        if None in (self.rows_in, self.rows_written, self.rows_quarantined):
            return None
        return self.rows_in == self.rows_written + self.rows_quarantined


def _ingest_counts(cat: Catalog, table: str | None) -> tuple[int | None, int | None, int | None]:
    if cat.has("ingest_stats"):
        where, params = ('WHERE "table" = ?', [table]) if table else ("", [])
        return cat.rows("SELECT sum(rows_in), sum(rows_written), sum(rows_quarantined) "
                        f"FROM ingest_stats {where}", params)[0]
    if table is not None:  # run.json only holds the totals of every table
        return None, None, None
    ingest = (run_manifest(cat.run).get("stages") or {}).get("ingest") or {}
    return tuple(ingest.get(k) for k in ("rows_in", "rows_written", "rows_quarantined"))


def _quarantine_reasons(cat: Catalog, table: str | None) -> dict[str, int]:
    if table is None:
        if not cat.has("quarantine"):
            return {}
        return {str(r): int(n) for r, n in cat.rows(
            "SELECT reason, sum(coalesce(n_rows, 1)) AS n FROM quarantine GROUP BY reason ORDER BY n DESC, reason")}
    # The quarantine view does not say which table a row was meant for; each shard's stats do.
    if not cat.has_columns("ingest_stats", "table", "quarantine_reasons"):
        return {}
    reasons: dict[str, int] = {}
    for (value,) in cat.rows('SELECT quarantine_reasons FROM ingest_stats WHERE "table" = ?', [table]):
        counts = json.loads(value) if isinstance(value, str) else value
        # The view unions every shard's reasons, so a shard lists the others' reasons as null.
        for reason, n in (counts or {}).items():
            if n:
                reasons[str(reason)] = reasons.get(str(reason), 0) + int(n)
    return dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))


def _in_table(table: str | None, column: str = "doc_id") -> str:
    """A filter keeping the rows whose `column` is a doc_id of `table` (none: every row)."""
    if table is None:
        return "true"
    return f"CAST({quote_ident(column)} AS VARCHAR) IN (SELECT CAST(doc_id AS VARCHAR) FROM {quote_ident(table)})"


def funnel(cat: Catalog, table: str | None = None) -> Funnel:
    """Ingest rows in -> written / quarantined (by reason) -> kept by dedup -> each selection, of one
    data table (`table`), or of every table together when `table` is None."""
    if table is not None and table not in cat.data_tables():
        raise NotFound(f"this run has no table {table!r}")
    rows_in, rows_written, rows_quarantined = _ingest_counts(cat, table)
    tables = cat.data_tables() if table is None else [table]
    written_by_table = {t: int(cat.scalar(f"SELECT count(*) FROM {quote_ident(t)}")) for t in tables}
    reasons = _quarantine_reasons(cat, table)
    if rows_quarantined is None and reasons:
        rows_quarantined = sum(reasons.values())
    if rows_written is None and written_by_table:
        rows_written = sum(written_by_table.values())

    steps: list[FunnelStep] = []
    if rows_in is not None:
        steps.append(FunnelStep("rows in", int(rows_in), "rows read from the input shards"
                                + (f" of {table}" if table else "")))
    if rows_written is not None:
        detail = ", ".join(f"{t} {n:,}" for t, n in written_by_table.items())
        steps.append(FunnelStep("written", int(rows_written), detail))
    sources = dedup_sources(cat)
    sidecars = [s for s in sources if s.is_sidecar] or sources  # sidecars hold every document once
    for source in sidecars if rows_written is not None else []:
        held, duplicates = cat.rows(
            "SELECT count(*), count(*) FILTER (WHERE is_duplicate AND prior_run IS NULL) "
            f"FROM ({source.sql}) WHERE {_in_table(table)}")[0]
        if table is not None and not held:  # the source never saw this table (e.g. dedup of instructions)
            continue
        steps.append(FunnelStep(f"after dedup ({source.view})", int(rows_written) - int(duplicates or 0),
                                f"written minus {int(duplicates or 0):,} duplicates of a cluster's survivor"))
    # Selections are alternatives, not successive steps: largest first keeps the funnel a funnel.
    chosen = []
    for selection in selections(cat):
        rows = selection.rows if table is None else int(cat.scalar(
            f"SELECT count(*) FROM {quote_ident(selection.view)} WHERE {_in_table(table)}") or 0)
        if rows or table is None:
            chosen.append((rows, selection))
    for rows, selection in sorted(chosen, key=lambda item: (-item[0], item[1].name)):
        steps.append(FunnelStep(f"selection {selection.name}", rows, selection.view))
    base = steps[0].rows if steps else 0
    steps = [FunnelStep(s.label, s.rows, s.detail, s.rows / base if base else None) for s in steps]
    return Funnel(
        rows_in=None if rows_in is None else int(rows_in),
        rows_written=None if rows_written is None else int(rows_written),
        rows_quarantined=None if rows_quarantined is None else int(rows_quarantined),
        written_by_table=written_by_table,
        quarantine_reasons=reasons,
        steps=steps,
        table=table,
    )


def funnels(cat: Catalog) -> dict[str, Funnel]:
    """One funnel per data table that holds rows or was read into: documents and instructions are
    never counted together, so every share is within one table."""
    found = {}
    for table in cat.data_tables():
        table_funnel = funnel(cat, table)
        if table_funnel.rows_written or table_funnel.rows_in:
            found[table] = table_funnel
    return found
