"""The overview: the run's manifest, its stages, and the funnel from rows read to rows selected."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from thresher.dashboards.catalog import Catalog, quote_ident
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
