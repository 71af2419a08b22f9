"""The one way a flow maps Prefect tasks over shards (or tables): explicit cache key, result kept in
the run as JSON, "are its files still there?" before a stored result is trusted, progress as it goes.

Each mapped task takes an explicit `cache_key` (shard content fingerprint + stage@version + parameters
hash) as its last parameter. thresher, not Prefect, keeps the results: Prefect's persisted results are
pickles (and a result record names its own serializer, so a record someone edited could ask for
pickle whatever a task configures), and a run directory may come from someone else. A result here is
plain JSON under `<run>/.task-results/`, named by a hash of its key and holding the key itself; a job
is skipped only when its stored result parses, carries the job's key, and `done(job, result)` finds
its outputs still carrying the key. Anything else (missing, edited, unreadable) runs the task again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ExternalSignal
from prefect.futures import as_completed

from thresher.interrupt import clear_stop, request_stop
from thresher.progress import stage_progress
from thresher.storage.parquet_io import read_cache_key, write_json_atomic
from thresher.storage.run_dir import RunDir

# A mapped task: Prefect runs and retries it, thresher keeps its result (see the module doc).
cached_task = functools.partial(task, cache_policy=NO_CACHE, persist_result=False)

RESULTS_DIR = ".task-results"


def result_path(run: RunDir, cache_key: str) -> Path:
    return Path(run.root) / RESULTS_DIR / (hashlib.sha256(cache_key.encode()).hexdigest()[:40] + ".json")


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"a task result holds {type(value).__name__}, which JSON cannot keep: return plain data")


def store_result(run: RunDir, cache_key: str, result: dict) -> None:
    """Keep a task's stats as JSON (numpy scalars become Python numbers; anything else JSON cannot hold is
    a bug in the task, not data to coerce)."""
    record = json.loads(json.dumps({"cache_key": cache_key, "result": result}, default=_plain))
    write_json_atomic(result_path(run, cache_key), record)


def stored_result(run: RunDir, cache_key: str) -> dict | None:
    """The stored result of the job with `cache_key`, or None when there is none that can be trusted."""
    try:
        record = json.loads(result_path(run, cache_key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("cache_key") != cache_key:
        return None
    if not isinstance(record.get("result"), dict):
        return None
    return record["result"]


@dataclass(frozen=True)
class Job:
    """One call of a mapped task: its arguments (without the cache key) and its cache key."""

    args: tuple
    cache_key: str


def sidecar_done(run: RunDir, key: str, shard_arg: int) -> Callable[[Job, dict], bool]:
    """`done` for a task that writes the sidecar `scores/<key>/part-<shard>.parquet`, where the shard
    id is the task's `shard_arg`-th argument."""
    return lambda job, _result: read_cache_key(run.score_part(key, job.args[shard_arg])) == job.cache_key


def map_cached(
    run: RunDir,
    task_: Any,
    jobs: Sequence[Job],
    *,
    label: str,
    done: Callable[[Job, dict], bool],
    rows: Callable[[dict], int] = lambda result: result["rows"],
    unit: str = "rows",
    jobs_unit: str = "shards",
    one_at_a_time: bool = False,
) -> list[dict]:
    """Run `task_(*job.args, job.cache_key)` for every job that is not done; the results in the order
    of `jobs`. `done(job, result)` says whether the job's outputs still carry its key. A job served
    from a stored result is reported with `skipped: True` and `seconds: 0.0`.

    `one_at_a_time` waits for each job before submitting the next (a global step that may use the
    whole machine, e.g. one dedup cluster per table)."""
    results: dict[int, dict] = {}
    pending: list[int] = []
    for index, job in enumerate(jobs):
        stored = stored_result(run, job.cache_key)
        if stored is not None and done(job, stored):
            results[index] = {**stored, "skipped": True, "seconds": 0.0}
        else:
            pending.append(index)

    def settle(index: int, future) -> dict:
        result = future.result()
        store_result(run, jobs[index].cache_key, result)
        results[index] = result
        return result

    clear_stop()
    with stage_progress(label, len(jobs), unit=unit, jobs=jobs_unit) as bar:
        for index in sorted(results):
            bar.advance(rows(results[index]))
        try:
            if one_at_a_time:
                for index in pending:
                    bar.advance(rows(settle(index, task_.submit(*jobs[index].args, jobs[index].cache_key))))
            else:
                futures = {task_.submit(*jobs[i].args, jobs[i].cache_key): i for i in pending}
                for future in as_completed(list(futures)):
                    bar.advance(rows(settle(futures[future], future)))
        except (KeyboardInterrupt, ExternalSignal):
            # Prefect's thread pool waits for running tasks before the signal ends the process:
            # ask them to stop at their next batch (thresher.interrupt).
            request_stop()
            raise
    return [results[i] for i in range(len(jobs))]
