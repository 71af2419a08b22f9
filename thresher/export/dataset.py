"""Export a selection as a Hugging Face dataset directory.

    <run>/exports/<name>/data/train-00000-of-0000N.parquet   selected rows + score columns, by rank or doc_id
    <run>/exports/<name>/README.md                           dataset card (see thresher.export.card)
    <run>/exports/<name>/recipe.yaml                         the selection recipe
    <run>/exports/<name>/selection.json                      the selection's metadata, copied

The rows are the selection's doc_ids joined to the run's `<table>_scored` catalog view, streamed
from DuckDB in record batches in rank order for a ranked selection (else by doc_id), and cut into
row groups and shards at boundaries that depend only on the rows themselves, so the same selection
exports to byte-identical files and memory stays bounded by one row group. Everything is written
into a temporary sibling directory that replaces the export only once complete: a killed export
leaves the previous export (or nothing) in place, never a half-written one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.export.config import (
    COMPRESSION,
    DEFAULT_COLUMNS,
    DEFAULT_MAX_SHARD_BYTES,
    DEFAULT_ROW_GROUP_BYTES,
    DEFAULT_ROW_GROUP_ROWS,
    SELECTION_COLUMNS,
    SPLIT,
    ExportConfig,
)
from thresher.export.info import QUANTILES, ExportColumn, ExportInfo, ShardInfo, recipe_yaml  # noqa: F401
from thresher.schema import DOCUMENT_SCHEMA, INSTRUCTION_SCHEMA
from thresher.storage.catalog import latest_score_keys, open_catalog
from thresher.storage.run_dir import DATA_TABLES, RunDir
from thresher.storage.sql import quote_ident

_FETCH_ROWS = 4096
_BASE_SCHEMAS = {"documents": DOCUMENT_SCHEMA, "instructions": INSTRUCTION_SCHEMA}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ExportError(ValueError):
    """An export that cannot be made; the message names the selection and the reason."""


# -- public API -------------------------------------------------------------------------------


def export_selection(
    run_dir: str | Path,
    selection_name: str,
    out_dir: str | Path | None = None,
    *,
    shard_rows: int | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    license: str | None = None,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write `selections/<selection_name>` of `run_dir` as a Hugging Face dataset directory.

    The directory is `<run>/exports/<selection_name>/` unless `out_dir` is given; it is replaced
    as a whole, atomically. Shards hold at most `shard_rows` rows (no limit by default) and aim at
    `max_shard_bytes` bytes of Parquet each (~250 MB by default). `columns` replaces the default
    columns (`DEFAULT_COLUMNS[table]` + every score column + the selection's weight/rank); doc_id
    is always the first column. `license` overrides the licence named by the selection recipe.
    Returns the export directory.
    """
    try:
        settings = ExportConfig(shard_rows=shard_rows, max_shard_bytes=max_shard_bytes, row_group_rows=row_group_rows,
                                license=license, columns=tuple(columns) if columns is not None else None)
    except ValueError as exc:
        raise ExportError(f"export settings: {exc}") from None
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    if not _NAME.match(selection_name) or selection_name in (".", ".."):
        raise ExportError(f"invalid selection name {selection_name!r}")
    selection_dir = run.root / "selections" / selection_name
    selected_path = selection_dir / "selected.parquet"
    metadata_path = selection_dir / "selection.json"
    if not selected_path.is_file() or not metadata_path.is_file():
        available = sorted(p.parent.name for p in (run.root / "selections").glob("*/selection.json"))
        raise ExportError(f"run {run.root} has no selection {selection_name!r} "
                          f"(selections: {', '.join(available) or 'none'})")
    selection_bytes = metadata_path.read_bytes()
    selection = json.loads(selection_bytes)
    table = selection.get("table")
    if table not in DATA_TABLES:
        raise ExportError(f"selection {selection_name!r}: unknown table {table!r}")

    destination = Path(out_dir).expanduser().resolve() if out_dir is not None else (
        run.root / "exports" / selection_name)
    _check_destination(destination, run)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(destination)
    staging = destination.with_name(f"{destination.name}.tmp-{os.getpid()}")
    staging.mkdir()
    try:
        info = _write_export(run, manifest, selection, selection_name, table, selected_path, staging,
                             settings)
        from thresher.export.card import render_card

        (staging / "selection.json").write_bytes(selection_bytes)
        (staging / "recipe.yaml").write_text(recipe_yaml(selection), encoding="utf-8")
        (staging / "README.md").write_text(render_card(info), encoding="utf-8")
        _fsync_tree(staging)
        _replace_dir(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def read_export_summary(export_dir: str | Path) -> dict:
    """Rows, shards and bytes of a finished export, read back from its files."""
    export_dir = Path(export_dir)
    shards = sorted((export_dir / "data").glob(f"{SPLIT}-*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in shards)
    return {"export_dir": str(export_dir), "rows": rows, "shards": len(shards),
            "bytes": sum(p.stat().st_size for p in shards),
            "selection": json.loads((export_dir / "selection.json").read_text(encoding="utf-8"))["name"]}


# -- the rows ---------------------------------------------------------------------------------


def _write_export(run: RunDir, manifest: dict, selection: dict, name: str, table: str, selected_path: Path,
                  staging: Path, settings: ExportConfig) -> ExportInfo:
    view = f"{table}_scored"
    with open_catalog(run) as con:
        views = {row[0] for row in con.execute("SELECT name FROM thresher_views").fetchall()}
        if view not in views or table not in views:
            raise ExportError(f"run {run.root} has no {view!r} view: score the run first")
        scored = [row[0] for row in con.execute(f"DESCRIBE {quote_ident(view)}").fetchall()]
        base = {row[0] for row in con.execute(f"DESCRIBE {quote_ident(table)}").fetchall()}
        selected_columns = [
            row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet($path)",
                                          {"path": str(selected_path)}).fetchall()]
        present = [c for c in SELECTION_COLUMNS if c in selected_columns]
        if present:
            counts = con.execute(
                "SELECT " + ", ".join(f"count({quote_ident(c)})" for c in present) + " FROM read_parquet($path)",
                {"path": str(selected_path)}).fetchall()[0]
            present = [c for c, n in zip(present, counts) if n > 0]
        selected_rows = con.execute("SELECT count(*) FROM read_parquet($path)",
                                    {"path": str(selected_path)}).fetchall()[0][0]
        if selected_rows == 0:
            # `datasets` cannot load a split without rows; an empty dataset helps nobody anyway.
            raise ExportError(f"selection {name!r} is empty: nothing to export")

        wanted = _choose_columns(name, table, scored, base, present, settings.columns)
        # The selection's own weight/rank shadow any score column of the same name.
        select_list = ", ".join(f"s.{quote_ident(c)}" if c in present else f"t.{quote_ident(c)}" for c in wanted)
        # A ranked selection is exported in rank order; any other by doc_id.
        order = "s.rank, t.doc_id" if "rank" in present else "t.doc_id"
        query = (f"SELECT {select_list} FROM {quote_ident(view)} AS t "
                 f"JOIN read_parquet($path) AS s ON t.doc_id = s.doc_id ORDER BY {order}")
        reader = con.sql(query, params={"path": str(selected_path)}).to_arrow_reader(_FETCH_ROWS)
        export_columns = _export_columns(run, table, reader.schema, base, present)
        schema = pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in export_columns])
        writer = _ShardWriter(staging / "data", schema, shard_rows=settings.shard_rows,
                              max_shard_bytes=settings.max_shard_bytes, row_group_rows=settings.row_group_rows)
        try:
            for batch in reader:
                writer.add(_conform(batch, schema))
            shards = writer.finish()
        finally:
            writer.abort()

    rows = sum(s.rows for s in shards)
    if rows != selected_rows:
        raise ExportError(
            f"selection {name!r} holds {selected_rows} doc_ids but {rows} rows of {table} match them: "
            "the run changed after the selection was made; run the selection again")
    info = ExportInfo(name=name, table=table, run_root=run.root, manifest=manifest, selection=selection,
                      columns=export_columns, schema=schema, shards=shards,
                      license=_resolve_license(settings.license, selection, manifest))
    _describe_scores(info, staging)
    return info


def _choose_columns(name: str, table: str, scored: list[str], base: set[str], selection_columns: list[str],
                    columns: Sequence[str] | None) -> list[str]:
    available = list(scored) + [c for c in selection_columns if c not in scored]
    if columns is None:
        score_columns = [c for c in scored if c not in base and c not in selection_columns]
        wanted = [c for c in DEFAULT_COLUMNS[table] if c in base] + score_columns + selection_columns
    else:
        wanted = list(columns)
        unknown = [c for c in wanted if c not in available]
        if unknown:
            raise ExportError(f"selection {name!r}: no column(s) {', '.join(map(repr, unknown))} in {table}_scored "
                              f"or the selection; available: {', '.join(available)}")
        duplicates = sorted({c for c in wanted if wanted.count(c) > 1})
        if duplicates:
            raise ExportError(f"selection {name!r}: column(s) given twice: {', '.join(duplicates)}")
    return ["doc_id"] + [c for c in wanted if c != "doc_id"]


def _export_columns(run: RunDir, table: str, duckdb_schema: pa.Schema, base: set[str],
                    selection_columns: list[str]) -> list[ExportColumn]:
    """The exported columns with their Arrow types: data columns keep thresher's own types (so
    `text` stays large_string and `conversation` a list of role/content structs); score columns
    take the type of their sidecar table, normalised."""
    origins = _score_origins(run)
    base_schema = _BASE_SCHEMAS[table]
    result = []
    for f in duckdb_schema:
        if f.name in base and f.name in base_schema.names:
            declared = base_schema.field(f.name)
            result.append(ExportColumn(f.name, declared.type, table, nullable=declared.nullable))
        elif f.name in selection_columns:
            result.append(ExportColumn(f.name, _normalise_type(f.type), "selection"))
        else:
            result.append(ExportColumn(f.name, _normalise_type(f.type), origins.get(f.name, table)))
    return result


def _score_origins(run: RunDir) -> dict[str, str]:
    """column name -> the scorer key (`name@version`) whose sidecar table holds it."""
    origins: dict[str, str] = {}
    for key in latest_score_keys(run):
        part = next(iter(sorted((run.root / "scores" / key).glob("part-*.parquet"))), None)
        if part is None:
            continue
        for name in pq.read_schema(part).names:
            if name != "doc_id":
                origins.setdefault(name, key)
    return origins


def _normalise_type(t: pa.DataType) -> pa.DataType:
    """Types every reader of a Hugging Face dataset understands: no views, UTC timestamps."""
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit, tz="UTC")
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        child = _normalise_type(t.value_type)
        return pa.list_(child) if pa.types.is_list(t) else pa.large_list(child)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _normalise_type(f.type), f.nullable) for f in t])
    return t


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [column if column.type == f.type else column.cast(f.type) for column, f in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _resolve_license(option: str | None, selection: dict, manifest: dict) -> str:
    recipe = selection.get("recipe") or {}
    run_recipe = manifest.get("recipe") or {}
    for candidate in (option, recipe.get("license"), run_recipe.get("license")):
        if candidate:
            return str(candidate).strip().lower()
    return "unknown"



# -- row groups and shards --------------------------------------------------------------------


def _value_sizes(array: pa.Array) -> np.ndarray:
    """Estimated in-memory bytes of each value of `array`: a function of the values alone, so
    row-group and shard boundaries do not depend on how DuckDB happened to cut its batches."""
    t = array.type
    n = len(array)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) + 4
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        child = _value_sizes(array.flatten())
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        return np.bincount(parents, weights=child, minlength=n).astype(np.int64) + 4
    if pa.types.is_struct(t):
        total = np.zeros(n, dtype=np.int64)
        for child in array.flatten():
            total += _value_sizes(child)
        return total
    try:
        width = max(t.bit_width // 8, 1)
    except ValueError:
        width = 8
    return np.full(n, width, dtype=np.int64)


def _row_sizes(batch: pa.RecordBatch) -> np.ndarray:
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        total += _value_sizes(column)
    return total


def _statistics_columns(schema: pa.Schema) -> list[str]:
    # Min/max of long text help no reader and bloat the footer; keep them for ids and scores.
    bulky = (pa.types.is_large_string, pa.types.is_large_binary, pa.types.is_list, pa.types.is_struct)
    return [f.name for f in schema if not any(test(f.type) for test in bulky) and f.name != "meta_json"]


class _ShardWriter:
    """Cuts an ordered stream of batches into row groups and Parquet shards.

    A row group closes at `row_group_rows` rows or at ~`row_group_bytes` estimated bytes; a shard
    closes at `shard_rows` rows, or before a row group that would take the file past
    `max_shard_bytes` (its compressed size predicted from the shard's compression so far).
    """

    def __init__(self, directory: Path, schema: pa.Schema, *, shard_rows: int | None, max_shard_bytes: int,
                 row_group_rows: int):
        self.directory = directory
        self.schema = schema
        self.shard_rows = shard_rows
        self.max_shard_bytes = max_shard_bytes
        self.row_group_rows = min(row_group_rows, shard_rows) if shard_rows else row_group_rows
        self.row_group_bytes = max(1, min(DEFAULT_ROW_GROUP_BYTES, max_shard_bytes // 4))
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.shards: list[ShardInfo] = []
        self._paths: list[Path] = []
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self._shard_rows = 0
        self._shard_estimate = 0
        self._shard_uncompressed = 0
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, batch: pa.RecordBatch) -> None:
        sizes = _row_sizes(batch)
        start = 0
        while start < batch.num_rows:
            room = self.row_group_rows - self.pending_rows
            if self.shard_rows:
                room = min(room, self.shard_rows - self._shard_rows - self.pending_rows)
            end = min(batch.num_rows, start + room)
            cumulative = self.pending_bytes + np.cumsum(sizes[start:end])
            over = np.flatnonzero(cumulative >= self.row_group_bytes)
            if over.size:
                end = start + int(over[0]) + 1
            self.pending.append(batch.slice(start, end - start))
            self.pending_rows += end - start
            self.pending_bytes += int(sizes[start:end].sum())
            if over.size or end - start == room:
                self._flush_row_group()
            start = end

    def _flush_row_group(self) -> None:
        if not self.pending_rows:
            return
        group = pa.Table.from_batches(self.pending, schema=self.schema)
        estimate = self.pending_bytes
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        if self._writer is not None and self._shard_rows:
            written = self._sink.tell()
            predicted = written + estimate * written / max(self._shard_estimate, 1)
            if predicted > self.max_shard_bytes:
                self._close_shard()
        if self._writer is None:
            self._open_shard()
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._shard_rows += group.num_rows
        self._shard_estimate += estimate
        if self.shard_rows and self._shard_rows >= self.shard_rows:
            self._close_shard()

    def _open_shard(self) -> None:
        path = self.directory / f"shard-{len(self._paths):05d}.parquet"
        self._paths.append(path)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(
            self._sink, self.schema, compression=COMPRESSION, write_statistics=_statistics_columns(self.schema),
            use_content_defined_chunking=True, write_page_index=True,
            sorting_columns=[pq.SortingColumn(0)],
        )
        self._shard_rows = 0
        self._shard_estimate = 0

    def _close_shard(self) -> None:
        assert self._writer is not None and self._sink is not None
        self._writer.close()
        self._sink.close()
        path = self._paths[-1]
        metadata = pq.read_metadata(path)
        self.shards.append(ShardInfo(
            path=path.name, rows=metadata.num_rows, bytes=path.stat().st_size,
            uncompressed_bytes=sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))))
        self._writer, self._sink = None, None
        self._shard_rows = 0
        self._shard_estimate = 0

    def finish(self) -> list[ShardInfo]:
        """Flush, close, and give the shards their final `train-0000i-of-0000N` names."""
        self._flush_row_group()
        if self._writer is not None:
            self._close_shard()
        total = len(self.shards)
        for index, shard in enumerate(self.shards):
            final = f"{SPLIT}-{index:05d}-of-{total:05d}.parquet"
            (self.directory / shard.path).rename(self.directory / final)
            shard.path = f"data/{final}"
        return self.shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer, self._sink = None, None


# -- score distributions for the card --------------------------------------------------------


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _describe_scores(info: ExportInfo, staging: Path) -> None:
    """Quantiles of every numeric score column (and the share of true in boolean ones), and the
    languages of a `lang` column, computed over the exported shards."""
    described = [c for c in info.columns
                 if c.origin != info.table and c.name != "rank"
                 and (_is_numeric(c.type) or pa.types.is_boolean(c.type))]
    has_lang = any(c.name == "lang" and pa.types.is_string(c.type) for c in info.columns)
    if not described and not has_lang:
        return
    files = [str(staging / s.path) for s in info.shards]
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")  # a fixed summation order: the card is byte-identical too
        source = "read_parquet($files)"
        for column in described:
            c = quote_ident(column.name)
            if pa.types.is_boolean(column.type):
                row = con.execute(f"SELECT count({c}), avg({c}::DOUBLE) FROM {source}", {"files": files}).fetchall()[0]
                info.score_stats.append({"column": column.name, "origin": column.origin, "kind": "bool",
                                         "count": row[0], "mean": row[1]})
                continue
            row = con.execute(
                f"SELECT count({c}), avg({c}::DOUBLE), min({c}::DOUBLE), "
                f"quantile_cont({c}::DOUBLE, {list(QUANTILES)}), max({c}::DOUBLE) FROM {source}",
                {"files": files}).fetchall()[0]
            info.score_stats.append({"column": column.name, "origin": column.origin, "kind": "numeric",
                                     "count": row[0], "mean": row[1], "min": row[2],
                                     "quantiles": list(row[3]) if row[3] is not None else None, "max": row[4]})
        if has_lang:
            info.languages = [tuple(r) for r in con.execute(
                f"SELECT lang, count(*) AS n FROM {source} WHERE lang IS NOT NULL GROUP BY lang "
                "ORDER BY n DESC, lang", {"files": files}).fetchall()]
    finally:
        con.close()


# -- atomic replacement -----------------------------------------------------------------------


def _check_destination(destination: Path, run: RunDir) -> None:
    """An export replaces its destination wholesale: never let that be anything but an export."""
    if destination == run.root or destination in run.root.parents or run.root / "selections" in (
            destination, *destination.parents):
        raise ExportError(f"cannot export into {destination}: it holds the run's own data")
    if destination.exists() or destination.is_symlink():
        entries = {p.name for p in destination.iterdir()} if destination.is_dir() else {"(a file)"}
        if entries and not {"README.md", "selection.json", "data"} <= entries:
            raise ExportError(f"refusing to replace {destination}: it exists and is not a thresher export")


def _remove_stale(destination: Path) -> None:
    # One export per destination at a time is the design (as for every thresher output), so a
    # temp or old sibling is the remains of a killed process.
    for stale in destination.parent.glob(f"{destination.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in destination.parent.glob(f"{destination.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _replace_dir(staging: Path, destination: Path) -> None:
    if destination.exists():
        old = destination.with_name(f"{destination.name}.old-{os.getpid()}")
        os.replace(destination, old)
        os.replace(staging, destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, destination)
    _fsync_dir(destination.parent)


def _fsync_tree(root: Path) -> None:
    for path in _walk_files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        _fsync_dir(directory)


def _walk_files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
