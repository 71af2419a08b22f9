"""The run's DuckDB catalog: views over the Parquet tables of a run directory.

Tasks write Parquet only; `build_catalog` (re)creates the views at the end of each stage, in the
one process that holds the database for writing. The views use paths relative to the run
directory, and `open_catalog` sets DuckDB's `file_search_path` to it, so a run directory keeps
working after it is moved or copied. Readers open the catalog read-only.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from thresher.storage.run_dir import DATA_TABLES, RunDir
from thresher.storage.sql import quote_ident

STAGE_TABLE_DIRS = ("dedup", "selections", "dsir", "judge_calibration", "semdedup", "distill", "augment")

# Stages that add views computed over other views (e.g. percentile bands over a score column)
# name a provider here: "module:function", called as function(con, existing_view_names) and
# returning (name, sql, description) triples. They run after every table and score view exists.
DERIVED_VIEW_PROVIDERS: list[str] = ["thresher.perplexity.bands:catalog_views",
                                     "thresher.augment.report:catalog_views"]


# Paths in view definitions are written as RUN_TOKEN + relative path. The persistent views drop
# the token (paths relative to the run, resolved through file_search_path, so the directory can
# move); read-only connections re-create every view as a TEMP view with the run's absolute path,
# which lets them forbid all file access outside the run directory.
RUN_TOKEN = "@RUN@/"


@dataclass(frozen=True)
class CatalogView:
    name: str
    description: str
    definition: str


def _version_sort_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-]", version))


def score_view_name(scorer_key: str, *, versioned: bool) -> str:
    name, _, version = scorer_key.partition("@")
    suffix = "_v" + re.sub(r"\W", "_", version) if versioned else ""
    return f"score_{name}{suffix}"


def latest_score_keys(run: RunDir) -> list[str]:
    """The newest version of each scorer present in the run, one key per scorer name."""
    newest: dict[str, str] = {}
    for key in run.score_keys():
        name, _, version = key.partition("@")
        if name not in newest or _version_sort_key(version) > _version_sort_key(newest[name].partition("@")[2]):
            newest[name] = key
    return [newest[name] for name in sorted(newest)]


def _has_parts(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("part-*.parquet"))


def build_catalog(run: RunDir) -> list[CatalogView]:
    """(Re)create every view in `<run>/catalog.duckdb`; returns the views it made."""
    views: list[CatalogView] = []
    con = duckdb.connect(str(run.catalog_path))
    try:
        con.execute("SET file_search_path = ?", [str(run.root)])
        existing = [row[0] for row in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = current_database()"
        ).fetchall()]
        for name in existing:
            con.execute(f"DROP VIEW {quote_ident(name)}")

        def create(name: str, sql: str, description: str) -> None:
            con.execute(f"CREATE VIEW {quote_ident(name)} AS {sql.replace(RUN_TOKEN, '')}")
            views.append(CatalogView(name, description, sql))

        def parquet(relative_dir: str) -> str:
            # union_by_name lets shards written by different schema versions share one view.
            return f"read_parquet('{RUN_TOKEN}{relative_dir}/part-*.parquet', union_by_name = true)"

        for table in (*DATA_TABLES, "quarantine"):
            if _has_parts(run.table_dir(table)):
                create(table, f"SELECT * FROM {parquet(table)}", f"every {table} row of the run")
        if (run.root / "stats" / "ingest").is_dir() and any((run.root / "stats" / "ingest").glob("*.json")):
            create(
                "ingest_stats",
                "SELECT * EXCLUDE (quarantine_reasons), to_json(quarantine_reasons) AS quarantine_reasons "
                f"FROM read_json('{RUN_TOKEN}stats/ingest/*.json', union_by_name = true)",
                "per-shard ingest counts: rows_in = rows_written + rows_quarantined",
            )

        latest = set(latest_score_keys(run))
        for key in run.score_keys():
            relative = f"scores/{key}"
            if not _has_parts(run.root / relative):
                continue
            create(score_view_name(key, versioned=True), f"SELECT * FROM {parquet(relative)}", f"scores of {key}")
            if key in latest:
                create(score_view_name(key, versioned=False), f"SELECT * FROM {parquet(relative)}",
                       f"scores of {key} (the newest version of {key.partition('@')[0]})")

        # Stage tables beyond scores: dedup/<table>/, selections/<name>/ and dsir/<table>/ each
        # become a view named <dir>_<table> (e.g. dedup_edges, selections_top_edu).
        for stage_dir in STAGE_TABLE_DIRS:
            root = run.root / stage_dir
            for table_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
                if any(table_dir.glob("*.parquet")):
                    relative = f"{stage_dir}/{table_dir.name}"
                    view_name = stage_dir + "_" + re.sub(r"\W", "_", table_dir.name)
                    create(view_name,
                           f"SELECT * FROM read_parquet('{RUN_TOKEN}{relative}/*.parquet', union_by_name = true)",
                           f"the {relative} table")

        score_views = [score_view_name(k, versioned=False) for k in sorted(latest)
                       if _has_parts(run.root / "scores" / k)]
        for table in DATA_TABLES:
            if not any(v.name == table for v in views):
                continue
            joins = " ".join(f"LEFT JOIN {quote_ident(v)} USING (doc_id)" for v in score_views)
            create(f"{table}_scored", f"SELECT * FROM {table} {joins}",
                   f"{table} joined to the newest version of every score table")
        existing_names = {v.name for v in views}
        for target in DERIVED_VIEW_PROVIDERS:
            module, _, attr = target.partition(":")
            provider = getattr(importlib.import_module(module), attr)
            for name, sql, description in provider(con, existing_names):
                create(name, sql, description)
                existing_names.add(name)
        con.execute("CREATE OR REPLACE TABLE thresher_views "
                    "(position INTEGER, name VARCHAR, description VARCHAR, definition VARCHAR)")
        con.executemany("INSERT INTO thresher_views VALUES (?, ?, ?, ?)",
                        [(i, v.name, v.description, v.definition) for i, v in enumerate(views)])
    finally:
        con.close()
    return views


def open_catalog(run: RunDir, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to the run's catalog whose relative view paths resolve inside the run.

    A read-only connection is also sandboxed: it may read files inside the run directory only,
    write none, and cannot lift those limits (DuckDB refuses to re-enable external access while
    the database is open). Queries typed by users, selection predicates and the dashboard all run
    on such connections, and several may be open at once.
    """
    if not run.catalog_path.is_file():
        raise FileNotFoundError(f"{run.catalog_path} does not exist: run `thresher ingest` or `thresher curate` first")
    con = duckdb.connect(str(run.catalog_path), read_only=read_only)
    con.execute("SET file_search_path = ?", [str(run.root)])
    if read_only:
        root = str(run.root).replace("'", "''") + "/"
        definitions = con.execute("SELECT name, definition FROM thresher_views ORDER BY position").fetchall()
        for name, definition in definitions:
            con.execute(f"CREATE TEMP VIEW {quote_ident(name)} AS {definition.replace(RUN_TOKEN, root)}")
        # The sandbox is a property of the database instance, which DuckDB shares between the
        # connections of one process: the first connection sets it, and once external access is
        # off nobody can turn it back on or widen the allowed directories.
        if con.execute("SELECT current_setting('enable_external_access')").fetchall()[0][0]:
            con.execute("SET allowed_directories = ?", [[str(run.root) + "/"]])
            con.execute("SET enable_external_access = false")
    return con
