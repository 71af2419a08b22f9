"""Curate runs shared by the flow tests: helpers and the one threads-runner curation of a small C4
corpus that several tests read (tests/flows/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.config import InputSpec, Recipe
from thresher.storage.run_dir import RunDir

OUTPUT_TABLES = ("documents", "instructions", "quarantine")


def read_outputs(run: RunDir) -> dict[str, pa.Table]:
    """Every Parquet table of a run, each sorted into a canonical order."""
    tables = {}
    dirs = [run.table_dir(t) for t in OUTPUT_TABLES] + sorted((run.root / "scores").glob("*@*"))
    for directory in dirs:
        parts = sorted(directory.glob("part-*.parquet"))
        if not parts:
            continue
        table = pa.concat_tables([pq.read_table(p) for p in parts]).replace_schema_metadata(None)
        keys = ["doc_id"] if "doc_id" in table.column_names else ["source", "source_row", "reason"]
        tables[str(directory.relative_to(run.root))] = table.sort_by([(k, "ascending") for k in keys])
    return tables


def recipe_for(tmp_path: Path, inputs: Path, name: str = "web", **fields) -> Recipe:
    return Recipe(name=name, run_dir=str(tmp_path / name), inputs=[InputSpec(paths=[str(inputs)], format="c4")],
                  **fields)
