"""Selections written directly, in the layout thresher.storage.select writes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_selection(run_root: Path, name: str, table: str, doc_ids: list[str], *, weight: list[float] | None = None,
                    rank: list[int] | None = None, recipe: dict | None = None,
                    funnel: list[dict] | None = None) -> None:
    """`selections/<name>/selected.parquet` + `selection.json`, in the layout thresher.storage.select writes."""
    order = sorted(range(len(doc_ids)), key=lambda i: doc_ids[i])
    columns = {"doc_id": pa.array([doc_ids[i] for i in order], pa.string())}
    if weight is not None:
        columns["weight"] = pa.array([weight[i] for i in order], pa.float64())
    if rank is not None:
        columns["rank"] = pa.array([rank[i] for i in order], pa.int64())
    directory = run_root / "selections" / name
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), directory / "selected.parquet")
    recipe = recipe or {"name": name, "table": table, "seed": 0, "where": [], "limit": None, "order_by": None,
                        "license": None}
    metadata = {
        "name": name, "table": table, "recipe": recipe, "recipe_hash": f"hash-of-{name}",
        "seed": recipe.get("seed", 0),
        "funnel": funnel or [{"step": "all", "sql": "", "rows": len(doc_ids)}],
        "selected_rows": len(doc_ids), "thresher_version": "0.1.0",
    }
    (directory / "selection.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
