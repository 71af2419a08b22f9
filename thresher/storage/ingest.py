"""Ingest one shard: stream it through its reader into the run's documents/instructions and
quarantine tables, and record counts that reconcile (rows in = rows written + rows quarantined).

A file that could not be read at all is a shard like any other: its one quarantine row counts as
one row in, and its stats name the reason (`file_quarantined`). When that reason may pass
(permission denied, file gone), the shard is not taken as done, so a resumed run tries it again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable

from thresher.config_base import IngestConfig, InputSpec
from thresher.schema import DOCUMENT_SCHEMA, INSTRUCTION_SCHEMA, QUARANTINE_SCHEMA, QuarantineReason
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key, write_json_atomic
from thresher.storage.readers import Shard, file_size, read_shard
from thresher.storage.run_dir import RunDir

# Bump when the rows ingest writes for the same input change; it is part of every cache key.
INGEST_VERSION = "1"
STAGE = "ingest"

ProgressCallback = Callable[[int], None]


def ingest_cache_key(shard: Shard, spec: InputSpec, ingest: IngestConfig) -> str:
    """Shard content fingerprint + stage@version + hash of the parameters that shape the output."""
    params = {
        "format": shard.format,
        "spec": spec.model_dump(mode="json", exclude={"paths"}),
        "ingest": ingest.model_dump(mode="json", exclude=set(IngestConfig.REPORTING_ONLY)),
    }
    params_hash = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=8).hexdigest()
    return f"{STAGE}@{INGEST_VERSION}:{shard.fingerprint}:{params_hash}"


def finished_stats(run: RunDir, shard: Shard, cache_key: str) -> dict | None:
    """The stats of a shard already ingested under `cache_key`, or None if it must be (re)done."""
    stats_path = run.stats_path(STAGE, shard.shard_id)
    if not stats_path.is_file():
        return None
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    outputs = (run.table_part(shard.table, shard.shard_id), run.quarantine_part(shard.shard_id))
    if stats.get("cache_key") != cache_key or any(read_cache_key(p) != cache_key for p in outputs):
        return None
    return stats


def needs_retry(stats: dict) -> bool:
    """Whether a shard's stats record a whole-file failure that may be gone by now."""
    return stats.get("file_quarantined") in QuarantineReason.TRANSIENT


def retire_superseded(run: RunDir, planned: list[Shard]) -> list[str]:
    """Remove the outputs of shards that quarantined a file for a passing reason and that a new
    plan reads under another shard id (the file became readable, so its content fingerprint, and
    with it its shard id, replaced the path-based one). Without this the run would count the file
    twice: once quarantined, once read. Returns the retired shard ids."""
    stats_dir = run.stats_path(STAGE, "x").parent
    if not stats_dir.is_dir():
        return []
    planned_ids = {shard.shard_id for shard in planned}
    planned_paths = {shard.path for shard in planned}
    retired = []
    for stats_path in sorted(stats_dir.glob("*.json")):
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        if stats["shard_id"] in planned_ids or stats["source"] not in planned_paths or not needs_retry(stats):
            continue
        # The stats go last: until then the shard still reads as ingested, never as half-removed.
        run.table_part(stats["table"], stats["shard_id"]).unlink(missing_ok=True)
        run.quarantine_part(stats["shard_id"]).unlink(missing_ok=True)
        stats_path.unlink()
        retired.append(stats["shard_id"])
    return retired


def ingest_shard(
    run: RunDir,
    shard: Shard,
    spec: InputSpec,
    ingest: IngestConfig,
    on_rows: ProgressCallback | None = None,
) -> dict:
    """Ingest `shard` into `run` unless it is already there under the same cache key.

    Both output files are written atomically and the stats file, written last, marks the shard as
    done, so a process killed at any point leaves the shard either done or redone from scratch on
    the next run. Returns the shard's stats.
    """
    cache_key = ingest_cache_key(shard, spec, ingest)
    done = finished_stats(run, shard, cache_key)
    if done is not None and not needs_retry(done):
        if on_rows:
            on_rows(done["rows_in"])
        return {**done, "skipped": True}

    started = time.perf_counter()
    schema = INSTRUCTION_SCHEMA if shard.table == "instructions" else DOCUMENT_SCHEMA
    rows_in = 0
    reasons: Counter[str] = Counter()
    records = AtomicParquetWriter(run.table_part(shard.table, shard.shard_id), schema, cache_key)
    quarantine = AtomicParquetWriter(run.quarantine_part(shard.shard_id), QUARANTINE_SCHEMA, cache_key)
    try:
        for batch in read_shard(shard, spec, ingest):
            records.write(batch.records)
            quarantine.write(batch.quarantine)
            rows_in += batch.rows_in
            if batch.quarantine.num_rows:
                columns = batch.quarantine.select(["reason", "n_rows"]).to_pydict()
                for reason, n in zip(columns["reason"], columns["n_rows"]):
                    reasons[reason] += n
            if on_rows:
                on_rows(batch.rows_in)
    except BaseException:
        records.abort()
        quarantine.abort()
        raise
    quarantine.close()
    records.close()

    rows_quarantined = sum(reasons.values())
    file_quarantined = next((reason for reason in reasons if reason in QuarantineReason.WHOLE_FILE), None)
    if rows_in != records.rows + rows_quarantined:
        raise AssertionError(
            f"{shard.path}: counts do not reconcile: {rows_in} in, {records.rows} written, "
            f"{rows_quarantined} quarantined"
        )
    stats = {
        "shard_id": shard.shard_id,
        "source": shard.path,
        "format": shard.format,
        "table": shard.table,
        "fingerprint": shard.fingerprint,
        "bytes_in": file_size(shard.path),
        "rows_in": rows_in,
        "rows_written": records.rows,
        "rows_quarantined": rows_quarantined,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "file_quarantined": file_quarantined,
        "seconds": round(time.perf_counter() - started, 3),
        "cache_key": cache_key,
    }
    write_json_atomic(run.stats_path(STAGE, shard.shard_id), stats)
    return {**stats, "skipped": False}
