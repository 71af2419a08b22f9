"""Run one scorer over one shard of a run, streaming, into its versioned sidecar table.

It reads the scorer's `input_columns` (`doc_id` and `text` by default; judges read instruction,
input and output; an embedding scorer may read another column). Judges also count cache hits,
parse failures and the like into the `stats` Counter that `score_shard` passes to every scorer.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.interrupt import raise_if_stop_requested
from thresher.scorers.base import Scorer, check_output, require_input_columns, scorer_key, scorer_params_hash
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key
from thresher.storage.run_dir import RunDir

SCORE_BATCH_ROWS = 1024


def score_cache_key(run: RunDir, scorer: Scorer, table: str, shard_id: str) -> str:
    """The input part's own cache key (its content identity) + scorer@version + params hash."""
    input_key = read_cache_key(run.table_part(table, shard_id))
    if input_key is None:
        raise FileNotFoundError(f"{run.table_part(table, shard_id)} is missing or was not written by thresher")
    return f"{scorer_key(scorer)}:{scorer_params_hash(scorer)}<-{input_key}"


def score_shard(
    run: RunDir,
    scorer: Scorer,
    table: str,
    shard_id: str,
    on_rows: Callable[[int], None] | None = None,
    batch_rows: int = SCORE_BATCH_ROWS,
    stats: Counter | None = None,
) -> dict:
    """Score the `table` part of `shard_id` unless its sidecar exists under the same cache key;
    a scorer with something to count counts it into `stats`."""
    return score_shard_once(run, [scorer], table, shard_id, batch_rows, on_rows=on_rows, stats=stats)[0]


def score_shard_once(
    run: RunDir,
    scorers: Sequence[Scorer],
    table: str,
    shard_id: str,
    batch_rows: int = SCORE_BATCH_ROWS,
    *,
    on_rows: Callable[[int], None] | None = None,
    stats: Counter | None = None,
) -> list[dict]:
    """Every scorer of `scorers` over one read of the `table` part of `shard_id` (datatrove's one pass
    per document): each batch goes through each scorer whose sidecar is not current, and each scorer
    writes its own sidecar under its own cache key. One stats dict per scorer, in the order given;
    `seconds` is that scorer's own time. `on_rows` hears of the shard's rows once, `stats` is passed
    to every scorer (judges count into it)."""
    keys = [score_cache_key(run, scorer, table, shard_id) for scorer in scorers]
    source = pq.ParquetFile(run.table_part(table, shard_id))
    rows = source.metadata.num_rows
    results: list[dict] = []
    todo: list[tuple[int, Scorer, str]] = []
    for scorer, key in zip(scorers, keys):
        results.append({"scorer": scorer_key(scorer), "table": table, "shard_id": shard_id, "rows": rows,
                        "seconds": 0.0, "skipped": True})
        if read_cache_key(run.score_part(scorer_key(scorer), shard_id)) != key:
            require_input_columns(scorer, source.schema_arrow.names, f"{table}/{shard_id}")
            todo.append((len(results) - 1, scorer, key))
    if not todo:
        if on_rows:
            on_rows(rows)
        return results
    columns = list(dict.fromkeys(c for _, scorer, _ in todo for c in scorer.input_columns))
    seconds = [0.0] * len(todo)
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(AtomicParquetWriter(run.score_part(scorer_key(scorer), shard_id),
                                                           scorer.output_schema, key)) for _, scorer, key in todo]
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
            raise_if_stop_requested()  # the writers discard their parts: no sidecar is half written
            for i, ((_, scorer, _), writer) in enumerate(zip(todo, writers)):
                started = time.perf_counter()
                own = batch.select(list(scorer.input_columns))
                writer.write(check_output(scorer, own, scorer.score(own, stats)))
                seconds[i] += time.perf_counter() - started
            if on_rows:
                on_rows(batch.num_rows)
    # Arrow's pool (mimalloc) keeps the shard's freed read buffers otherwise: 30-50 MiB a process.
    pa.default_memory_pool().release_unused()
    for (index, _, _), spent in zip(todo, seconds):
        results[index].update(seconds=round(spent, 3), skipped=False)
    return results
