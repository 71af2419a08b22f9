"""The one way a flow maps Prefect tasks over shards (or tables): explicit cache key, result kept in
the run, "are its files still there?" before a cached result is trusted, progress as it goes.

Prefect's default cache policy hashes a task's inputs and source, not the content of the files a
path points to, so every mapped task takes an explicit `cache_key` (shard content fingerprint +
stage@version + parameters hash) as its last parameter, and persists its result under the run
directory. A cached result only says the task once ran: `done(job)` checks that its outputs still
carry the key, and the task runs again (refreshing the cache) when they do not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.futures import as_completed

from thresher.progress import stage_progress
from thresher.storage.parquet_io import read_cache_key
from thresher.storage.run_dir import RunDir


def explicit_cache_key(context, parameters: dict) -> str:
    return parameters["cache_key"]


# A task whose cache key is its `cache_key` parameter and whose result is persisted.
cached_task = functools.partial(task, cache_key_fn=explicit_cache_key, persist_result=True)


def run_result_storage(run: RunDir) -> Path:
    """Task results live inside the run, so one run's cache can never vouch for another's files.

    A Path is Prefect's local-filesystem storage that needs no saved block."""
    return Path(run.root) / ".prefect-results"


def result_of(future) -> dict:
    """A task's stats; a result served from Prefect's cache is reported as skipped and free."""
    result = future.result()
    if future.state.name == "Cached":
        return {**result, "skipped": True, "seconds": 0.0}
    return result


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
    one_at_a_time: bool = False,
) -> list[dict]:
    """Run `task_(*job.args, job.cache_key)` for every job; the results in the order of `jobs`.
    `done(job, result)` says whether the job's outputs still carry its key.

    `one_at_a_time` waits for each job before submitting the next (a global step that may use the
    whole machine, e.g. one dedup cluster per table)."""
    bound = task_.with_options(result_storage=run_result_storage(run))
    results: dict[int, dict] = {}

    def settle(index: int, future) -> dict:
        job = jobs[index]
        result = result_of(future)
        if not done(job, result):  # a cached result whose files were deleted since: run the job again
            result = bound.with_options(refresh_cache=True)(*job.args, job.cache_key)
        results[index] = result
        return result

    with stage_progress(label, len(jobs), unit=unit) as bar:
        if one_at_a_time:
            for index, job in enumerate(jobs):
                bar.advance(rows(settle(index, bound.submit(*job.args, job.cache_key))))
        else:
            futures = {bound.submit(*job.args, job.cache_key): i for i, job in enumerate(jobs)}
            for future in as_completed(list(futures)):
                bar.advance(rows(settle(futures[future], future)))
    return [results[i] for i in range(len(jobs))]
