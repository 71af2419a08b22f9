"""The judgment cache: a model's verdict on an input is computed once.

A judgment is keyed by (model identity, judge name, prompt version, mode, settings, input hash);
re-running a judge, re-ingesting the same data, or judging a row that appears in several shards
finds it here and never calls the model (or even loads it). Layout:

    <root>/<judge name>/part-<time>-<pid>-<random>.parquet

Each `put` writes one new Parquet part atomically (temp name, fsync, rename), so concurrent workers
never collide and a killed run keeps every part it finished: a judge checkpoints every
`batch_size` rows inside a shard. `get` looks the keys of a batch up with DuckDB over all parts
(a semi-join, so memory holds only the hits). `compact()` merges parts into one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from thresher.storage.parquet_io import write_table_atomic

CACHE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("judge", pa.string(), nullable=False),
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("input_hash", pa.string(), nullable=False),
        pa.field("result_json", pa.large_string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def input_hash(fields: dict[str, str | None]) -> str:
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def judgment_key(model_id: str, judge: str, prompt_version: str, settings: dict, in_hash: str) -> str:
    payload = json.dumps([model_id, judge, prompt_version, settings, in_hash], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


class JudgmentCache:
    """Parquet parts under `<root>/<judge>/` (see the module doc)."""

    def __init__(self, root: str | os.PathLike[str], judge: str):
        self.root = Path(root)
        self.judge = judge
        self.dir = self.root / judge

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []

    def get(self, keys: Sequence[str]) -> dict[str, dict]:
        """{key: result dict} for the keys that are cached."""
        parts = self.parts()
        if not parts or not keys:
            return {}
        import duckdb

        con = duckdb.connect()
        try:
            wanted = pa.table({"key": pa.array(sorted(set(keys)), pa.string())})
            con.register("wanted", wanted)
            rows = con.execute(
                "SELECT c.key, any_value(c.result_json) FROM read_parquet(?) AS c "
                "SEMI JOIN wanted USING (key) GROUP BY c.key",
                [[str(p) for p in parts]],
            ).fetchall()
        finally:
            con.close()
        return {key: json.loads(result) for key, result in rows}

    def put(self, entries: Iterable[tuple[str, str, str, str, dict]]) -> int:
        """Store (key, model_id, prompt_version, input_hash, result) entries as one new part."""
        rows = list(entries)
        if not rows:
            return 0
        now = dt.datetime.now(dt.UTC)
        table = pa.table(
            {
                "key": [r[0] for r in rows],
                "model_id": [r[1] for r in rows],
                "judge": [self.judge] * len(rows),
                "prompt_version": [r[2] for r in rows],
                "input_hash": [r[3] for r in rows],
                "result_json": [json.dumps(r[4], sort_keys=True, ensure_ascii=False) for r in rows],
                "created_at": [now] * len(rows),
            },
            schema=CACHE_SCHEMA,
        )
        name = f"part-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        write_table_atomic(self.dir / name, table.to_batches(), CACHE_SCHEMA)
        return len(rows)

    def count(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts())

    def compact(self) -> int:
        """Merge every part into one (deduplicated by key); returns the rows kept."""
        parts = self.parts()
        if len(parts) < 2:
            return self.count()
        import duckdb

        con = duckdb.connect()
        try:
            table = con.sql(
                "SELECT key, any_value(model_id) AS model_id, any_value(judge) AS judge, "
                "any_value(prompt_version) AS prompt_version, any_value(input_hash) AS input_hash, "
                "any_value(result_json) AS result_json, min(created_at) AS created_at "
                "FROM read_parquet(?) GROUP BY key ORDER BY key",
                params=[[str(p) for p in parts]],
            ).to_arrow_table()
        finally:
            con.close()
        table = table.cast(CACHE_SCHEMA)
        now = dt.datetime.now(dt.UTC)
        name = f"part-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-compact.parquet"
        write_table_atomic(self.dir / name, table.to_batches(), CACHE_SCHEMA)
        for part in parts:
            part.unlink(missing_ok=True)
        return table.num_rows


def remove_dead_writes(cache_root: str | os.PathLike[str]) -> int:
    """Delete the temp files of cache parts whose writer was killed mid-write; how many. A part's name is
    unique (time, pid, random), so unlike other Parquet writes no later write of the same name clears
    them; call it only while holding the run's writer lock, when any temp file is a dead process's."""
    stale = list(Path(cache_root).glob("*/part-*.parquet.tmp-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def compute_through_cache(
    keys: Mapping[int, str],
    cache: JudgmentCache | None,
    batch_size: int,
    compute: Callable[[list[int]], list[Any]],
    record: Callable[[str, int, Any], tuple],
) -> tuple[dict[int, Any], dict[str, dict], int]:
    """Results for every row index in `keys` (index -> judgment key): cache hits as stored, the
    rest computed once per distinct key (duplicate rows share a call), `batch_size` rows per
    `compute(indices)` call, each batch put in the cache (as `record(key, index, result)`) before
    the next starts, so a killed run resumes without asking the model again.
    Returns (results by index, the cache hits by key, rows computed)."""
    hits = cache.get(list(keys.values())) if cache else {}
    pending: dict[str, int] = {}
    for i, key in keys.items():
        if key not in hits:
            pending.setdefault(key, i)
    fresh: dict[str, Any] = {}
    order = list(pending.items())
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for (key, _), result in zip(chunk, compute([i for _, i in chunk])):
            fresh[key] = result
        if cache:
            cache.put(record(key, i, fresh[key]) for key, i in chunk)
    results = {i: hits[key] if key in hits else fresh[key] for i, key in keys.items()}
    return results, hits, len(pending)
