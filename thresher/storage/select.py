"""Selections: a recipe's SQL predicates over the catalog, written to `selections/<name>/`.

    selections/<name>/selected.parquet   doc_id (+ rank when the recipe ranks), sorted by doc_id
    selections/<name>/selection.json     recipe, recipe hash, seed, funnel, counts

Predicates are SQL written by the recipe's author and run on a read-only, sandboxed catalog
connection (no file access outside the run, no writes). Each predicate is checked on its own
first, so an error names the step. Nothing here depends on wall-clock time, so the same recipe
over the same run gives byte-identical files.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from thresher import __version__
from thresher.config_base import SelectionRecipe
from thresher.storage.catalog import open_catalog
from thresher.storage.parquet_io import AtomicParquetWriter, write_json_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import single_statement

SELECTED_SCHEMA = pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field("rank", pa.int64())])
_BATCH_ROWS = 65_536


class SelectionError(ValueError):
    """A recipe that cannot run on this run; the message names the recipe and the step."""


def selection_dir(run: RunDir, name: str):
    return run.root / "selections" / name


def run_selection(run: RunDir, recipe: SelectionRecipe) -> dict:
    """Apply `recipe` to `run`; returns the selection's metadata (also written as JSON)."""
    view = f"{recipe.table}_scored"
    with open_catalog(run) as con:
        views = {row[0] for row in con.execute("SELECT name FROM thresher_views").fetchall()}
        if view not in views:
            raise SelectionError(f"selection {recipe.name!r}: run {run.root} has no {view!r} view")
        predicates = []
        for step in recipe.where:
            label = f"selection {recipe.name!r}, step {step.name!r}"
            predicate = "(" + single_statement(step.sql, "SELECT 1 WHERE ({})", label=label, error=SelectionError) + ")"
            try:
                con.execute(f"SELECT count(*) FROM {view} WHERE {predicate} LIMIT 0").fetchall()
            except duckdb.Error as exc:
                raise SelectionError(f"selection {recipe.name!r}, step {step.name!r}: {exc}") from None
            predicates.append(predicate)
        order_by = (single_statement(recipe.order_by, "SELECT 1 ORDER BY {}",
                                     label=f"selection {recipe.name!r}, order_by", error=SelectionError)
                    if recipe.order_by else None)

        cumulative = [" AND ".join(predicates[: i + 1]) for i in range(len(predicates))]
        counts = con.execute(
            "SELECT count(*)" + "".join(f", count(*) FILTER (WHERE {c})" for c in cumulative) + f" FROM {view}"
        ).fetchall()[0]
        funnel = [{"step": "all", "sql": "", "rows": counts[0]}] + [
            {"step": step.name, "sql": step.sql, "rows": n} for step, n in zip(recipe.where, counts[1:])
        ]

        where = " AND ".join(predicates) or "TRUE"
        if recipe.limit is not None or order_by:
            # A ranked selection keeps its rank (1 = first by order_by, ties by doc_id) with or without a cap.
            ranking = f"{order_by}, doc_id" if order_by else "doc_id"
            cap = f"WHERE rank <= {int(recipe.limit)}" if recipe.limit is not None else ""
            query = (f"SELECT doc_id, rank FROM (SELECT doc_id, row_number() OVER (ORDER BY {ranking}) AS rank "
                     f"FROM {view} WHERE {where}) {cap} ORDER BY doc_id")
        else:
            query = f"SELECT doc_id, NULL::BIGINT AS rank FROM {view} WHERE {where} ORDER BY doc_id"
        out_dir = selection_dir(run, recipe.name)
        reader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
        with AtomicParquetWriter(out_dir / "selected.parquet", SELECTED_SCHEMA) as writer:
            for batch in reader:
                writer.write(pa.RecordBatch.from_arrays(batch.columns, schema=SELECTED_SCHEMA))

    metadata = {
        "name": recipe.name,
        "table": recipe.table,
        "recipe": recipe.model_dump(mode="json"),
        "recipe_hash": recipe.content_hash(),
        "seed": recipe.seed,
        "funnel": funnel,
        "selected_rows": writer.rows,
        "thresher_version": __version__,
    }
    write_json_atomic(out_dir / "selection.json", metadata)
    return metadata
