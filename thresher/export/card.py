"""The dataset card (README.md) of an export: a YAML header the Hub and `datasets` read, and a
body that says where the rows came from.

Header: pretty_name, license, language (from a `lang` column), task_categories, size_categories,
tags, configs (data_files of the train split) and dataset_info (features typed as the Parquet
shards are, split sizes). Body: provenance, files, columns, the selection funnel, score
distributions and the recipe. Nothing in it depends on the time of the export or on local paths,
so the same selection renders the same card.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pyarrow as pa
import yaml

from thresher import __version__

if TYPE_CHECKING:
    from thresher.export.info import ExportInfo

_SIZE_CATEGORIES = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"),
)
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
# A language is declared in the header when it holds at least this share of the rows.
LANGUAGE_MIN_SHARE = 0.01


def size_category(rows: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>1T"


def feature_yaml(name: str, t: pa.DataType) -> dict:
    """One entry of `dataset_info.features`, as `datasets.Features._to_yaml_list()` writes it."""
    entry: dict = {"name": name}
    entry.update(_feature_type(t))
    return entry


def _feature_type(t: pa.DataType) -> dict:
    if pa.types.is_struct(t):
        return {"struct": [feature_yaml(f.name, f.type) for f in t]}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        key = "list" if pa.types.is_list(t) else "large_list"
        inner = _feature_type(t.value_type)
        if list(inner) == ["dtype"]:
            return {key: inner["dtype"]}
        if list(inner) == ["struct"]:
            return {key: inner["struct"]}
        return {key: inner}
    return {"dtype": _dtype(t)}


def _dtype(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return {16: "float16", 32: "float32", 64: "float64"}[t.bit_width]
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, tz={t.tz}]" if t.tz else f"timestamp[{t.unit}]"
    return str(t)  # string, large_string, int64, int32, binary, date32[day], ...


def card_header(info: ExportInfo) -> dict:
    selection = info.selection
    tags = ["thresher", "data-curation", info.table]
    header: dict = {"pretty_name": info.name, "license": info.license}
    languages = _declared_languages(info)
    if languages:
        header["language"] = languages
    header.update({
        "task_categories": ["text-generation"],
        "size_categories": [size_category(info.rows)],
        "tags": tags,
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train-*"}],
        }],
        "dataset_info": {
            "features": [feature_yaml(f.name, f.type) for f in info.schema],
            "splits": [{"name": "train", "num_bytes": info.dataset_size, "num_examples": info.rows}],
            "download_size": info.download_size,
            "dataset_size": info.dataset_size,
        },
    })
    if selection.get("recipe_hash"):
        header["tags"] = tags + [f"thresher-recipe-{selection['recipe_hash']}"]
    return header


def _declared_languages(info: ExportInfo) -> list[str]:
    total = sum(n for _, n in info.languages)
    return [lang for lang, n in info.languages
            if total and n / total >= LANGUAGE_MIN_SHARE and _LANGUAGE_CODE.match(lang)][:20]


def _cell(value: object) -> str:
    """A value inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _code(value: object) -> str:
    text = _cell(value)
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _number(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render_card(info: ExportInfo) -> str:
    from thresher.export.info import QUANTILES, recipe_yaml

    selection, manifest = info.selection, info.manifest
    run_recipe = manifest.get("recipe") or {}
    run_name = run_recipe.get("name") or info.run_root.name
    header = yaml.safe_dump(card_header(info), sort_keys=False, allow_unicode=True, width=1000)
    lines = [
        "---", header.rstrip("\n"), "---", "",
        f"# {info.name}", "",
        f"{info.rows:,} {info.table} selected by the thresher recipe `{info.name}` "
        f"(recipe hash `{selection.get('recipe_hash')}`) from the run `{run_name}`, "
        f"with the scores thresher computed for each row. Split `train`, "
        f"{len(info.shards)} Parquet shard(s), sorted by `doc_id`.",
        "",
        "## Provenance", "",
        "| | |", "|---|---|",
        f"| run | `{_cell(run_name)}` |",
        f"| run recipe hash | `{_cell(manifest.get('recipe_hash') or '-')}` |",
        f"| run created | {_cell(manifest.get('created_at') or '-')} |",
        f"| run seed | {_cell(manifest.get('seed', '-'))} |",
        f"| source table | `{info.table}` |",
        f"| selection recipe | `{_cell(selection.get('name'))}` |",
        f"| recipe hash | `{_cell(selection.get('recipe_hash'))}` |",
        f"| seed | {_cell(selection.get('seed'))} |",
        f"| selected rows | {info.rows:,} |",
        f"| licence | {_cell(info.license)} |",
        f"| thresher version (selection) | {_cell(selection.get('thresher_version') or '-')} |",
        f"| thresher version (export) | {__version__} |",
    ]
    versions = manifest.get("versions") or {}
    if versions:
        lines.append("| packages (run) | " + _cell(", ".join(f"{k} {v}" for k, v in sorted(versions.items()))) + " |")
    lines += [
        "",
        "The recipe, with its hash and the run, reproduces this selection exactly: "
        "`recipe.yaml` and `selection.json` in this repository hold it.",
        "",
        "## Files", "",
        "| file | rows | size |", "|---|---|---|",
        *[f"| `{s.path}` | {s.rows:,} | {_bytes(s.bytes)} |" for s in info.shards],
        "| `recipe.yaml` | | the selection recipe |",
        "| `selection.json` | | recipe, hash, seed, funnel, counts |",
        "",
        "## Columns", "",
        "| column | type | from |", "|---|---|---|",
        *[f"| `{c.name}` | {_cell(_type_label(c.type))} | {_cell(_origin_label(c.origin, info.table))} |"
          for c in info.columns],
        "",
    ]
    funnel = selection.get("funnel") or []
    if funnel:
        first = funnel[0].get("rows") or 0
        lines += ["## Selection funnel", "",
                  "Each step keeps the rows that pass it and every step before it.", "",
                  "| step | rows | kept | SQL |", "|---|---|---|---|"]
        for step in funnel:
            rows = step.get("rows")
            kept = f"{100 * rows / first:.1f} %" if first and rows is not None else "-"
            lines.append(f"| {_cell(step.get('step'))} | {_number(rows)} | {kept} | {_code(step.get('sql', ''))} |")
        kept = f"{100 * info.rows / first:.1f} %" if first else "-"
        lines.append(f"| **selected** | {info.rows:,} | {kept} | |")
        lines.append("")
    numeric = [s for s in info.score_stats if s["kind"] == "numeric"]
    booleans = [s for s in info.score_stats if s["kind"] == "bool"]
    if numeric or booleans or info.languages:
        lines += ["## Score distributions", "", "Computed over the exported rows.", ""]
    if numeric:
        labels = [f"p{round(q * 100)}" for q in QUANTILES]
        lines += ["| column | scorer | non-null | mean | min | " + " | ".join(labels) + " | max |",
                  "|---|---|---|---|---|" + "---|" * len(labels) + "---|"]
        for s in numeric:
            quantiles = s["quantiles"] or [None] * len(QUANTILES)
            lines.append(f"| `{s['column']}` | {_cell(s['origin'])} | {s['count']:,} | {_number(s['mean'])} | "
                         f"{_number(s['min'])} | " + " | ".join(_number(q) for q in quantiles)
                         + f" | {_number(s['max'])} |")
        lines.append("")
    if booleans:
        lines += ["| column | scorer | non-null | share true |", "|---|---|---|---|"]
        lines += [f"| `{s['column']}` | {_cell(s['origin'])} | {s['count']:,} | {_number(s['mean'])} |"
                  for s in booleans]
        lines.append("")
    if info.languages:
        total = sum(n for _, n in info.languages)
        lines += ["| language | rows | share |", "|---|---|---|"]
        lines += [f"| {_cell(lang)} | {n:,} | {100 * n / total:.1f} % |" for lang, n in info.languages[:15]]
        if len(info.languages) > 15:
            rest = sum(n for _, n in info.languages[15:])
            lines.append(f"| {len(info.languages) - 15} others | {rest:,} | {100 * rest / total:.1f} % |")
        lines.append("")
    lines += [
        "## Recipe", "",
        "```yaml", recipe_yaml(selection).rstrip("\n"), "```", "",
        "## Loading", "",
        "```python",
        "from datasets import load_dataset",
        "",
        'dataset = load_dataset("<this repository or directory>", split="train")',
        "```", "",
        "Exported by thresher. The score columns are thresher's measurements; the thresholds that "
        "chose the rows are the recipe's.", "",
    ]
    return "\n".join(lines)


def _type_label(t: pa.DataType) -> str:
    return str(t).replace("\n", " ")


def _origin_label(origin: str, table: str) -> str:
    if origin == table:
        return f"{table} table"
    if origin == "selection":
        return "selection"
    return f"scorer {origin}"
