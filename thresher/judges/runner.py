"""Build judges by name and run one over a shard of a run into its versioned sidecar table.

`judge_shard` is `thresher.scorers.apply.score_shard` (same cache key, same atomic sidecar
`scores/<name>@<version>/`, the judge's `input_columns`) in smaller batches, with the shard's
statistics extended by what the judge counted: cache hits, rows sent to the model, parse
failures, truncations, injection flags and rows outside the sample.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from typing import Any

from thresher.scorers.apply import score_shard
from thresher.scorers.base import Scorer
from thresher.scorers.registry import UnknownScorerError, available_scorers, build_scorer, scorer_class
from thresher.storage.run_dir import RunDir

JUDGE_BATCH_ROWS = 256
JUDGE_CACHE_DIR = "judge_cache"
# What a judged shard reports besides rows and seconds (counted by the judge's `score`).
JUDGE_STAT_KEYS = ("cache_hits", "model_rows", "parse_errors", "truncated", "injection_flags", "not_sampled")


def build_judge_scorer(name: str, params: dict[str, Any] | None = None, *, run: RunDir | None = None) -> Scorer:
    """A registered judge (stage "judge": the prompt judges, IFD) by name; with `run`, its judgment
    cache defaults to `<run>/judge_cache`."""
    try:
        stage = scorer_class(name).stage
    except UnknownScorerError:
        raise ValueError(f"unknown judge {name!r}; known: {', '.join(available_scorers('judge'))}") from None
    if stage != "judge":
        raise ValueError(f"{name} is not a judge (run it with `thresher score`); judges: "
                         f"{', '.join(available_scorers('judge'))}")
    params = dict(params or {})
    if run is not None and params.get("cache_dir") is None:
        params["cache_dir"] = str(run.root / JUDGE_CACHE_DIR)
    return build_scorer(name, params)


def judge_shard(
    run: RunDir,
    judge,
    table: str,
    shard_id: str,
    on_rows: Callable[[int], None] | None = None,
) -> dict:
    """Judge the `table` part of `shard_id` unless its sidecar exists under the same cache key;
    a judged shard's statistics add what the judge counted."""
    stats: Counter = Counter()
    result = score_shard(run, judge, table, shard_id, on_rows, batch_rows=JUDGE_BATCH_ROWS, stats=stats)
    if result["skipped"]:
        return result
    return {**result, **{key: stats[key] for key in JUDGE_STAT_KEYS}}


def judge_params(judge) -> dict:
    return dataclasses.asdict(judge)
