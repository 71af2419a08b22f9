"""What an export is made of (its columns, shards, selection and recipe), shared by the dataset
writer and the dataset card."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import yaml

QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


@dataclass(frozen=True)
class ExportColumn:
    name: str
    type: pa.DataType
    origin: str  # the data table, a scorer key (`heuristics@1`) or "selection"
    nullable: bool = True


@dataclass
class ShardInfo:
    path: str  # relative to the export directory
    rows: int
    bytes: int  # file size
    uncompressed_bytes: int  # sum of the row groups' uncompressed sizes


@dataclass
class ExportInfo:
    """What the card is made from; also what `export_selection`'s callers may report."""

    name: str
    table: str
    run_root: Path
    manifest: dict
    selection: dict
    columns: list[ExportColumn]
    schema: pa.Schema
    shards: list[ShardInfo] = field(default_factory=list)
    license: str = "unknown"
    score_stats: list[dict] = field(default_factory=list)
    languages: list[tuple[str, int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def download_size(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def dataset_size(self) -> int:
        return sum(s.uncompressed_bytes for s in self.shards)


def recipe_yaml(selection: dict) -> str:
    """The selection's recipe as YAML, its keys in the recipe model's order (selection.json sorts them)."""
    recipe = dict(selection.get("recipe") or {})
    try:
        from thresher.config_base import SelectionRecipe

        order = list(SelectionRecipe.model_fields)
    except ImportError:  # pragma: no cover - an older thresher without selection recipes
        order = []
    ordered = {k: recipe.pop(k) for k in order if k in recipe} | recipe
    header = f"# selection recipe {selection.get('name')!s}, recipe hash {selection.get('recipe_hash')!s}\n"
    return header + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=1000)
