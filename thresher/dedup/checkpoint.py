"""Checkpoints of the dedup cluster step, so that a killed clustering resumes where it stopped.

The cluster step of a table is one global computation, but it is made of units whose results
are small next to the work they cost: the exact-duplicate groups, the candidate edges of each LSH
band, the shingle sets of each shard that verification re-reads, the verified Jaccards, the
connected components. Each finished unit is two files in the table's work directory:

    <work>/checkpoints/<unit>.parquet   its rows, written atomically under `<cluster key>#<unit>`
    <work>/checkpoints/<unit>.json      {"cache_key": ..., "stats": ...}, written after the rows

and a unit counts as done only when both carry the key, so a kill between the two redoes just that
unit. Every later step reads a unit's rows back from its Parquet file, whether the unit was
computed now or by a killed run, so a resumed run takes the very same path through the data as an
uninterrupted one and writes the same bytes. A new cluster key (other inputs or parameters)
invalidates every unit; the checkpoints are removed with the work directory once the step's
outputs are written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key, write_json_atomic

_STREAM_ROWS = 65_536


def copy_query(con: duckdb.DuckDBPyConnection, sql: str, path: Path, schema: pa.Schema, key: str) -> int:
    """Stream a query's result into a Parquet file that appears atomically under `key`."""
    reader = con.sql(sql).to_arrow_reader(_STREAM_ROWS)
    with AtomicParquetWriter(path, schema, key) as writer:
        for batch in reader:
            columns = [batch.column(f.name).cast(f.type) for f in schema]
            writer.write(pa.RecordBatch.from_arrays(columns, schema=writer.schema))
    return writer.rows


class Checkpoints:
    """The finished units of one cluster step (one cluster key) in `directory`."""

    def __init__(self, directory: Path, cluster_key: str):
        self.directory = directory
        self.cluster_key = cluster_key
        self.reused: list[str] = []
        self.computed: list[str] = []
        self._drop_other_keys()

    def path(self, unit: str) -> Path:
        return self.directory / f"{unit}.parquet"

    def key(self, unit: str) -> str:
        return f"{self.cluster_key}#{unit}"

    def _done_stats(self, unit: str) -> dict | None:
        marker = self.directory / f"{unit}.json"
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or recorded.get("cache_key") != self.key(unit):
            return None
        if read_cache_key(self.path(unit)) != self.key(unit):
            return None
        stats = recorded.get("stats")
        return stats if isinstance(stats, dict) else None

    def unit(self, unit: str, compute: Callable[[Path, str], dict]) -> tuple[Path, dict]:
        """The unit's Parquet file and statistics: its checkpoint when one carries this key, else
        `compute(path, key)`, which writes the file atomically under `key` and returns stats."""
        stats = self._done_stats(unit)
        if stats is not None:
            self.reused.append(unit)
            return self.path(unit), stats
        started = time.perf_counter()
        stats = {**compute(self.path(unit), self.key(unit)), "seconds": round(time.perf_counter() - started, 3)}
        self.finish(unit, stats)
        return self.path(unit), stats

    def query_unit(self, con: duckdb.DuckDBPyConnection, unit: str, prepare: Callable[[], str | tuple[str, dict]],
                   schema: pa.Schema) -> tuple[Path, dict]:
        """`unit` for a unit that is the result of SQL: `prepare()` runs whatever statements the
        unit needs and returns the query of its rows (optionally with extra statistics)."""

        def compute(path: Path, key: str) -> dict:
            prepared = prepare()
            sql, extra = prepared if isinstance(prepared, tuple) else (prepared, {})
            return {**extra, "rows": copy_query(con, sql, path, schema, key)}

        return self.unit(unit, compute)

    def finish(self, unit: str, stats: dict) -> None:
        """Mark a unit done: its statistics, under the key, after its rows."""
        write_json_atomic(self.directory / f"{unit}.json", {"cache_key": self.key(unit), "stats": stats})
        self.computed.append(unit)

    def summary(self) -> dict:
        return {"reused": len(self.reused), "computed": len(self.computed)}

    def _drop_other_keys(self) -> None:
        """Units of another cluster key can never be reused: remove them (and stray temp files)."""
        if not self.directory.is_dir():
            return
        prefix = self.cluster_key + "#"
        for path in self.directory.iterdir():
            if path.suffix == ".json":
                try:
                    key = json.loads(path.read_text(encoding="utf-8")).get("cache_key")
                except (OSError, ValueError, AttributeError):
                    key = None
                if not (isinstance(key, str) and key.startswith(prefix)):
                    path.unlink(missing_ok=True)
            elif path.suffix == ".parquet":
                key = read_cache_key(path)
                if not (key and key.startswith(prefix)):
                    path.unlink(missing_ok=True)
