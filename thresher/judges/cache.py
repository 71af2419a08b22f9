"""The judgment cache: a model's verdict on an input is computed once.

A judgment is keyed by (model identity, judge name, prompt version, mode, settings, input hash);
re-running a judge, re-ingesting the same data, or judging a row that appears in several shards
finds it here and never calls the model (or even loads it). Layout:

    <root>/<judge name>/judgments.sqlite    (+ -wal / -shm while a connection is open or after a kill)

one SQLite table `judgments(key TEXT PRIMARY KEY, model_id, prompt_version, input_hash,
result_json, created_at)`. Why SQLite: a lookup walks the primary-key B-tree, so its cost grows
with log(entries) instead of with the number of files written so far (the previous layout wrote
one Parquet part per `put` and scanned every part on every `get`: quadratic over a run; see
bench/judgment_cache.py for both measured side by side). It is in the standard library, its file
is self-describing (`sqlite3 judgments.sqlite` opens it), and it serialises writers across
processes itself.

Concurrency: the database runs in WAL mode, so readers never block and are never blocked; writers
(judge workers in several processes) take turns, each waiting up to `BUSY_TIMEOUT_S` for the
lock. A `put` is one short transaction.

Kill safety: each `put` is one transaction (`INSERT OR IGNORE`, so a key stored twice keeps its
first verdict), committed before the judge starts its next batch: a process killed mid-`put`
leaves the transaction rolled back on the next open, and every earlier batch readable. Commits
are `synchronous=NORMAL`: durable across a process kill; after a power loss the last few commits
may be lost (never corrupted), which only means those judgments are computed again.

Older runs hold `part-*.parquet` files here (the previous layout). The first open of a cache
imports them, one part per transaction, oldest first, and deletes a part only after its rows are
committed, so a kill during the import loses nothing and a repeat import is a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from thresher.interrupt import raise_if_stop_requested

STORE_NAME = "judgments.sqlite"
LEGACY_PART_GLOB = "part-*.parquet"  # the previous layout; imported on first open
SCHEMA_VERSION = 1  # PRAGMA user_version of a store this module wrote
BUSY_TIMEOUT_S = 120.0  # how long a writer waits for another process's transaction
LOOKUP_CHUNK = 500  # keys per `IN (...)` lookup: well under SQLite's bound-parameter limit

# A rowid table with the key's index, not WITHOUT ROWID: rows of ~300 bytes would make the key's
# B-tree wide and deep; measured at 100 k entries: puts of 32 1.0 vs 2.5 ms, lookups of 32 0.09 vs 0.28 ms.
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY NOT NULL,
    model_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""
_INSERT = (
    "INSERT OR IGNORE INTO judgments (key, model_id, prompt_version, input_hash, result_json, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

# Connections a forked child inherited: never used again and never closed there (closing one in the
# child could disturb the parent's locks), only kept from being garbage-collected.
_INHERITED: list[sqlite3.Connection] = []


def input_hash(fields: dict[str, str | None]) -> str:
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def judgment_key(model_id: str, judge: str, prompt_version: str, settings: dict, in_hash: str) -> str:
    payload = json.dumps([model_id, judge, prompt_version, settings, in_hash], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class JudgmentCache:
    """One judge's judgments in `<root>/<judge>/judgments.sqlite` (see the module doc). The
    connection opens on first use, once per process and object, and is safe to share between threads."""

    def __init__(self, root: str | os.PathLike[str], judge: str):
        self.root = Path(root)
        self.judge = judge
        self.dir = self.root / judge
        self.path = self.dir / STORE_NAME
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.RLock()

    # -- connection -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid != os.getpid():
            _INHERITED.append(self._connection)
            self._connection = None
        if self._connection is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; every write below opens its own.
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                         check_same_thread=False)
            try:
                _set_wal(connection)
                connection.execute("PRAGMA synchronous=NORMAL")
                if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    with _transaction(connection):
                        connection.execute(_CREATE_TABLE)
                        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                _import_legacy_parts(connection, self.dir)
            except BaseException:
                connection.close()
                raise
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API the judges use -------------------------------------------------------------------

    def parts(self) -> list[Path]:
        """The files that hold this judge's judgments: the store (once created), and any
        previous-layout Parquet parts not imported yet (none once the store has been opened)."""
        if not self.dir.is_dir():
            return []
        store = [self.path] if self.path.exists() else []
        return store + sorted(self.dir.glob(LEGACY_PART_GLOB))

    def _holds_anything(self) -> bool:
        # An open connection answers without touching the file system (the hot path of `get`).
        return (self._connection is not None and self._pid == os.getpid()) or bool(self.parts())

    def get(self, keys: Sequence[str]) -> dict[str, dict]:
        """{key: result dict} for the keys that are cached."""
        wanted = sorted(set(keys))
        if not wanted or not self._holds_anything():
            return {}  # nothing cached: do not create an empty store just to look in it
        found: dict[str, dict] = {}
        with self._lock:
            connection = self._connect()
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                rows = connection.execute(
                    f"SELECT key, result_json FROM judgments WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                found.update((key, json.loads(result)) for key, result in rows)
        return found

    def put(self, entries: Iterable[tuple[str, str, str, str, dict]]) -> int:
        """Store (key, model_id, prompt_version, input_hash, result) entries in one transaction;
        returns how many were new (a key already cached keeps its first verdict and is not counted)."""
        now = _utc_now()
        rows = [(key, model_id, prompt_version, in_hash, json.dumps(result, sort_keys=True, ensure_ascii=False), now)
                for key, model_id, prompt_version, in_hash, result in entries]
        if not rows:
            return 0
        with self._lock:
            connection = self._connect()
            with _transaction(connection):
                before = connection.total_changes
                connection.executemany(_INSERT, rows)
                return connection.total_changes - before

    def count(self) -> int:
        """Judgments stored (a full count: O(entries), meant for reports and tests, not hot paths)."""
        if not self._holds_anything():
            return 0
        with self._lock:
            return self._connect().execute("SELECT count(*) FROM judgments").fetchone()[0]

    def compact(self) -> int:
        """Fold the write-ahead log into the store and rewrite it without free pages (VACUUM); returns
        the judgments kept. It waits for (and holds up) other writers: run it between stages. Lookups
        do not need it: they cost the same before and after."""
        if not self._holds_anything():
            return 0
        with self._lock:
            connection = self._connect()
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return connection.execute("SELECT count(*) FROM judgments").fetchone()[0]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock is taken up front, so a writer
    waits for the busy timeout instead of failing on a read-to-write upgrade."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, tb) -> None:
        self.connection.execute("ROLLBACK" if exc_type else "COMMIT")


def _set_wal(connection: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock and may answer "locked" at once instead of
    # waiting on the busy handler when several processes open the store together: retry.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"could not put the judgment cache in WAL mode (got {mode!r})")
        return


def _import_legacy_parts(connection: sqlite3.Connection, directory: Path) -> int:
    """Move previous-layout Parquet parts into the store, oldest part first (names start with the
    write time, so where parts disagree on a key the first verdict wins, as in the store). A part is
    deleted only after its rows are committed; a part another process imported and deleted meanwhile
    is skipped. Returns the rows newly stored."""
    parts = sorted(directory.glob(LEGACY_PART_GLOB))
    if not parts:
        return 0
    import pyarrow.parquet as pq

    stored = 0
    for part in parts:
        try:
            table = pq.read_table(part, columns=["key", "model_id", "prompt_version", "input_hash",
                                                 "result_json", "created_at"])
        except FileNotFoundError:
            continue
        created = [None if t is None else t.isoformat(timespec="microseconds")
                   for t in table.column("created_at").to_pylist()]
        rows = zip(*(table.column(name).to_pylist() for name in
                     ("key", "model_id", "prompt_version", "input_hash", "result_json")), created)
        with _transaction(connection):
            before = connection.total_changes
            connection.executemany(_INSERT, [(*row, at or _utc_now()) for *row, at in rows])
            stored += connection.total_changes - before
        part.unlink(missing_ok=True)
    return stored


def remove_dead_writes(cache_root: str | os.PathLike[str]) -> int:
    """Delete the temp files of previous-layout cache parts whose writer was killed mid-write; how
    many. The SQLite store leaves none (a killed transaction is rolled back from its own journal on
    the next open, and -wal/-shm files are part of the store, not debris), but a cache directory an
    older version was killed in may still hold them, and their names were unique (time, pid,
    random), so nothing else clears them. Call it only while holding the run's writer lock, when
    any temp file is a dead process's."""
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
    Returns (results by index, the cache hits by key, rows computed). The cache's connection is
    closed on return: SQLite checkpoints its write-ahead log when the last connection closes, and a
    connection left to the garbage collector (a traceback or a long-lived object holding the cache)
    would write into the run's cache whenever that happens, e.g. while a read-only dashboard browses it."""
    try:
        return _compute_through_cache(keys, cache, batch_size, compute, record)
    finally:
        if cache is not None:
            cache.close()


def _compute_through_cache(keys: Mapping[int, str], cache: JudgmentCache | None, batch_size: int,
                           compute: Callable[[list[int]], list[Any]], record: Callable[[str, int, Any], tuple]
                           ) -> tuple[dict[int, Any], dict[str, dict], int]:
    hits = cache.get(list(keys.values())) if cache else {}
    pending: dict[str, int] = {}
    for i, key in keys.items():
        if key not in hits:
            pending.setdefault(key, i)
    fresh: dict[str, Any] = {}
    order = list(pending.items())
    for start in range(0, len(order), batch_size):
        raise_if_stop_requested()  # every finished batch is already in the cache
        chunk = order[start : start + batch_size]
        for (key, _), result in zip(chunk, compute([i for _, i in chunk])):
            fresh[key] = result
        if cache:
            cache.put(record(key, i, fresh[key]) for key, i in chunk)
    results = {i: hits[key] if key in hits else fresh[key] for i, key in keys.items()}
    return results, hits, len(pending)
