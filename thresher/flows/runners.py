"""Task runners: threads on one machine by default, processes for CPU-bound scorers, Dask to
scale out. The choice lives in the recipe so a deployment can change it without code."""

from __future__ import annotations

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from thresher.config import TaskRunnerSpec


def build_task_runner(spec: TaskRunnerSpec) -> TaskRunner:
    if spec.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=spec.workers)
    if spec.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=spec.workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:  # pragma: no cover - the dask extra is part of the default install
        raise ValueError("task_runner kind 'dask' needs the prefect-dask package") from None
    if spec.dask_address:
        return DaskTaskRunner(address=spec.dask_address)
    # One single-threaded worker process per core: scorers are CPU-bound Python.
    return DaskTaskRunner(cluster_kwargs={"n_workers": spec.workers or 2, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})
