"""Atomic, schema-explicit Parquet writing.

Every file appears under its final name only when it is complete: rows stream into
`<name>.tmp-<pid>` and the file is renamed into place on success, so a killed process leaves at
worst a temp file that the next run overwrites, never a truncated table that DuckDB would read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CACHE_KEY_METADATA = b"thresher.cache_key"
COMPRESSION = "zstd"


def _statistics_columns(schema: pa.Schema) -> list[str]:
    """Columns worth min/max statistics. Text columns are not: their statistics help no query,
    and the footer that holds them stays in memory until the file closes, so it would grow with
    the size of the shard."""
    bulky = (pa.types.is_large_string, pa.types.is_large_binary, pa.types.is_list, pa.types.is_struct)
    return [f.name for f in schema if not any(test(f.type) for test in bulky) and f.name != "meta_json"]


def _with_cache_key(schema: pa.Schema, cache_key: str | None) -> pa.Schema:
    if cache_key is None:
        return schema
    metadata = dict(schema.metadata or {})
    metadata[CACHE_KEY_METADATA] = cache_key.encode()
    return schema.with_metadata(metadata)


class AtomicParquetWriter:
    """Streams record batches into one Parquet file that appears atomically on `close()`."""

    def __init__(self, path: str | Path, schema: pa.Schema, cache_key: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = _with_cache_key(schema, cache_key)
        _remove_stale_temps(self.path)
        self._tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self._writer = pq.ParquetWriter(
            self._tmp, self.schema, compression=COMPRESSION, write_statistics=_statistics_columns(schema)
        )
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if not batch.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"{self.path}: batch schema {batch.schema} != table schema {self.schema}")
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        self._writer.close()
        _fsync(self._tmp)
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_table_atomic(
    path: str | Path, batches: Iterable[pa.RecordBatch], schema: pa.Schema, cache_key: str | None = None
) -> int:
    with AtomicParquetWriter(path, schema, cache_key) as writer:
        for batch in batches:
            writer.write(batch)
    return writer.rows


def read_cache_key(path: str | Path) -> str | None:
    """The cache key a finished file was written under, or None if absent or unreadable."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(CACHE_KEY_METADATA)
    return value.decode() if value is not None else None


def write_json_atomic(path: str | Path, payload: object) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)


def _remove_stale_temps(path: Path) -> None:
    # One writer per output file at a time is the design, so a temp sibling is the remains of a
    # killed process.
    for stale in path.parent.glob(f"{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
