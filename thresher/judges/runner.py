"""Run a judge over one shard of a run into its versioned sidecar table.

The same contract as `thresher.scorers.apply.score_shard` (same cache key: the input part's content
identity + scorer@version + parameters hash; same atomic sidecar `scores/<name>@<version>/`), with
two differences judges need: the shard is read with the judge's `input_columns` (instruction,
input, output, not only `text`), and the shard's statistics include cache hits, rows sent to the
model, parse failures, truncations and injection flags.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from thresher.judges.ifd import IFDScorer
from thresher.judges.judges import JUDGES
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import check_output, scorer_key
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key
from thresher.storage.run_dir import RunDir

JUDGE_BATCH_ROWS = 256
JUDGE_CACHE_DIR = "judge_cache"

# name -> class; the same entries belong in thresher.scorers.registry
JUDGE_SCORERS: dict[str, type] = {**JUDGES, "ifd": IFDScorer}


def build_judge_scorer(name: str, params: dict[str, Any] | None = None, *, run: RunDir | None = None):
    """A judge (or IFD) scorer by name; with `run`, its judgment cache defaults to `<run>/judge_cache`."""
    params = dict(params or {})
    base = name[: -len("_gen")] if name.endswith("_gen") and name not in JUDGE_SCORERS else name
    if base != name:
        params.setdefault("mode", "generate")
    try:
        cls = JUDGE_SCORERS[base]
    except KeyError:
        raise ValueError(f"unknown judge {name!r}; known: {', '.join(sorted(JUDGE_SCORERS))}") from None
    if run is not None and params.get("cache_dir") is None:
        params["cache_dir"] = str(run.root / JUDGE_CACHE_DIR)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for judge {name!r}: {exc}") from None


def judge_shard(
    run: RunDir,
    judge,
    table: str,
    shard_id: str,
    on_rows: Callable[[int], None] | None = None,
) -> dict:
    """Judge the `table` part of `shard_id` unless its sidecar exists under the same cache key."""
    cache_key = score_cache_key(run, judge, table, shard_id)
    source = pq.ParquetFile(run.table_part(table, shard_id))
    rows = source.metadata.num_rows
    out_path = run.score_part(scorer_key(judge), shard_id)
    base = {"scorer": scorer_key(judge), "table": table, "shard_id": shard_id, "rows": rows}
    if read_cache_key(out_path) == cache_key:
        if on_rows:
            on_rows(rows)
        return {**base, "seconds": 0.0, "skipped": True}
    present = set(source.schema_arrow.names)
    missing = [c for c in judge.input_columns if c not in present]
    if missing:
        raise ValueError(f"{scorer_key(judge)} needs columns {', '.join(missing)}, absent from {table}/{shard_id}")
    started = time.perf_counter()
    stats: Counter = Counter()
    with AtomicParquetWriter(out_path, judge.output_schema, cache_key) as writer:
        for batch in source.iter_batches(batch_size=JUDGE_BATCH_ROWS, columns=list(judge.input_columns)):
            writer.write(check_output(judge, batch, judge.score(batch, stats)))
            if on_rows:
                on_rows(batch.num_rows)
    seconds = round(time.perf_counter() - started, 3)
    return {
        **base,
        "seconds": seconds,
        "skipped": False,
        "cache_hits": stats["cache_hits"],
        "model_rows": stats["model_rows"],
        "parse_errors": stats["parse_errors"],
        "truncated": stats["truncated"],
        "injection_flags": stats["injection_flags"],
        "not_sampled": stats["not_sampled"],
    }


def judge_params(judge) -> dict:
    return dataclasses.asdict(judge)
