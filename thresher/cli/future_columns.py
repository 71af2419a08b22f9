"""The columns a recipe's run will have, so `thresher validate` can bind its SQL before any work.

Selections, DSIR selections, distillation targets and diversity scores are SQL over
`<table>_scored`: the data table joined to the newest version of every score sidecar (see
thresher/storage/catalog.py). Before a run exists, those columns follow from the recipe: the table's
schema, each scorer's and judge's `output_schema`, and the sidecars the dedup, DSIR, embedding
and classifier stages write. A run directory that already holds data adds the columns it has (a recipe may select on
a score an earlier command wrote).

The prediction is a superset where a stage's output depends on data (all of dedup's columns even if
only exact dedup runs), so a typo is caught and a correct recipe is never refused: only "no such
column" binder errors are reported, never type errors or missing tables (subqueries may name views
that only exist later).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.schema import DOCUMENT_SCHEMA, INSTRUCTION_SCHEMA

TABLE_SCHEMAS = {"documents": DOCUMENT_SCHEMA, "instructions": INSTRUCTION_SCHEMA}


class UnknownColumns(Exception):
    """A stage's output could not be predicted (a scorer that does not build): nothing is checked."""


def future_fields(sections: dict[str, Any], run_dir: Path | None) -> list[pa.Field]:
    """Every sidecar column the recipe's stages (and an existing run) put into `<table>_scored`,
    doc_id excluded; the first field of a name wins."""
    fields: dict[str, pa.Field] = {}
    for schema in _stage_schemas(sections):
        for field in schema:
            fields.setdefault(field.name, field)
    if run_dir is not None:
        for schema in _existing_score_schemas(run_dir):
            for field in schema:
                fields.setdefault(field.name, field)
    fields.pop("doc_id", None)
    return list(fields.values())


def _stage_schemas(sections: dict[str, Any]) -> Iterator[pa.Schema]:
    from thresher.scorers.registry import build_scorer

    for key in ("scorers", "judges"):
        for spec in sections.get(key) or []:
            if spec is None:
                raise UnknownColumns(f"{key}: an invalid entry")
            try:
                yield build_scorer(spec.name, spec.params).output_schema
            except Exception as exc:  # noqa: BLE001 - reported by the scorer check; here only "unknown"
                raise UnknownColumns(f"{spec.name}: {exc}") from exc
    if sections.get("dedup") is not None:
        from thresher.dedup.tables import EXACT_SIDECAR_SCHEMA, MINHASH_SIDECAR_SCHEMA

        yield EXACT_SIDECAR_SCHEMA
        yield MINHASH_SIDECAR_SCHEMA
    dsir = sections.get("dsir")
    if dsir is not None:
        from thresher.dsir.weights import NUM_TOKENS_COLUMN, weight_column

        yield pa.schema([pa.field(NUM_TOKENS_COLUMN, pa.int64())]
                        + [pa.field(weight_column(t.name), pa.float64()) for t in dsir.targets])
    embeddings = sections.get("embeddings")
    if embeddings is not None:
        yield from _embedding_schemas(embeddings)
    for config in sections.get("classifiers") or []:
        if config is not None:
            yield pa.schema([pa.field(config.score_column, pa.float32()),
                             pa.field(config.percentile_column, pa.float32())])


def _embedding_schemas(config: Any) -> Iterator[pa.Schema]:
    from thresher.embeddings.semdedup import SIDECAR_SCHEMA

    try:
        yield config.embed.scorer().output_schema
    except Exception as exc:  # noqa: BLE001 - the embeddings check reports why the model is missing
        raise UnknownColumns(f"embeddings.embed: {exc}") from exc
    if config.semdedup is not None:
        yield SIDECAR_SCHEMA
    for distill in config.distill:
        yield pa.schema([pa.field(f"distilled_{distill.head_name}_score", pa.float32())])


def _existing_score_schemas(run_dir: Path) -> Iterator[pa.Schema]:
    scores = run_dir / "scores"
    if not scores.is_dir():
        return
    for key_dir in sorted(p for p in scores.iterdir() if p.is_dir()):
        part = next(iter(sorted(key_dir.glob("part-*.parquet"))), None)
        if part is not None:
            try:
                yield pq.read_schema(part)
            except (OSError, pa.ArrowException):
                continue  # an unreadable sidecar is the stage's problem, not the recipe's


def unknown_column_problem(sql: str, template: str, table: str, fields: Iterable[pa.Field]) -> str | None:
    """The binder's "no such column" message for `sql` spliced into `template` (whose FROM is
    `<table>_scored`), with the nearest known names; None when it binds or fails for another reason."""
    import duckdb

    columns = [*TABLE_SCHEMAS[table], *fields]
    empty = pa.schema(columns).empty_table()
    con = duckdb.connect()
    try:
        con.register(f"{table}_scored", empty)
        con.execute(template.format(sql))
    except duckdb.BinderException as exc:
        message = str(exc)
        if "Referenced column" not in message and "not found in FROM clause" not in message:
            return None
        name = _quoted_name(message)
        names = [c.name for c in columns]
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.6) if name else []
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return (f"no column {name or '(unknown)'} in {table}_scored when this recipe runs "
                f"({len(names)} columns: the table, its scorers, judges and stages){hint}")
    except duckdb.Error:
        return None  # syntax is the parser check's; types and other views are the stage's to judge
    finally:
        con.close()
    return None


def _quoted_name(message: str) -> str | None:
    start = message.find('"')
    end = message.find('"', start + 1)
    return message[start + 1:end] if 0 <= start < end else None
