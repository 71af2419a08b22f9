"""Select k documents by their DSIR log importance weights, streaming, in bounded memory.

Gumbel top-k: adding independent Gumbel(0, 1) noise to every log weight and keeping the k largest
keys samples k documents without replacement with probabilities proportional to the importance
weights (the reference's resampling). `method="top_k"` keeps the k largest log weights.

Noise that is a function of the document, not of its position: a document's Gumbel variate is
derived from blake2b(seed, stream, doc_id), so the selection does not depend on shard order,
batch size, the number of workers or which other documents a filter removed, and a recorded seed
reproduces it exactly on any machine. Ties (equal keys) go to the smaller doc_id.

Bounded memory: candidates stream out of DuckDB as Arrow batches (a query over the run's read-only
catalog: the dsir sidecar, optionally restricted by a SQL predicate over `documents_scored` or by
a query returning doc_ids) into `StreamingTopK`, which holds fewer than 2k + batch rows. Only
the chosen doc_ids of earlier targets (at most k) are kept to exclude them from later ones.

Several targets (the reference's `separate_targets`): target i gets int(k * p_i) documents (the
last target the remainder), chosen in order, each among the candidates not yet chosen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher import __version__
from thresher.dsir.config import DsirSelection
from thresher.dsir.fit import FittedDsir
from thresher.dsir.weights import NUM_TOKENS_COLUMN, DsirScorer, LogWeightStats, weight_column
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import scorer_key
from thresher.storage.catalog import open_catalog, score_view_name
from thresher.storage.parquet_io import read_cache_key, write_json_atomic, write_table_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import single_statement

SELECTED_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("rank", pa.int64(), nullable=False),  # 1 = largest key within the target
        pa.field("log_weight", pa.float64(), nullable=False),
        pa.field("gumbel", pa.float64()),  # the noise added (null for top_k)
        pa.field("key", pa.float64(), nullable=False),  # log_weight + gumbel: what was ranked
    ],
    metadata={"thresher.table": "selection"},
)
BASELINE_SCHEMA = pa.schema(
    [pa.field("selection", pa.string(), nullable=False), pa.field("doc_id", pa.string(), nullable=False),
     pa.field("target", pa.string(), nullable=False)],
    metadata={"thresher.table": "dsir_baselines"},
)
DEFAULT_BATCH_ROWS = 65_536
_TWO_TO_MINUS_52 = 2.0**-52


class SelectionError(ValueError):
    """A selection that cannot run; the message says why and what to do."""


# -- noise ----------------------------------------------------------------------------------------


def uniform_from_bits(bits: np.ndarray) -> np.ndarray:
    """uint64 random bits -> U(0, 1) on the open interval: the top 52 bits, centred, so that
    (bits + 0.5) * 2**-52 is exact in float64 and lies in [2**-53, 1 - 2**-53]."""
    return ((bits >> np.uint64(12)).astype(np.float64) + 0.5) * _TWO_TO_MINUS_52


def uniform_noise(doc_ids: Sequence[str], seed: int, stream: str) -> np.ndarray:
    """U(0, 1) variates (open interval), one per doc_id, a pure function of (seed, stream, doc_id)."""
    base = hashlib.blake2b(f"thresher-dsir\x1f{seed}\x1f{stream}\x1f".encode(), digest_size=8)
    digests = bytearray()
    for doc_id in doc_ids:
        h = base.copy()
        h.update(doc_id.encode())
        digests += h.digest()
    return uniform_from_bits(np.frombuffer(bytes(digests), dtype="<u8"))


def gumbel_from_uniform(u: np.ndarray) -> np.ndarray:
    return -np.log(-np.log(u))


def gumbel_noise(doc_ids: Sequence[str], seed: int, stream: str) -> np.ndarray:
    """Standard Gumbel variates, one per doc_id, a pure function of (seed, stream, doc_id)."""
    return gumbel_from_uniform(uniform_noise(doc_ids, seed, stream))


# The largest Gumbel variate `gumbel_noise` can return (about 36.7): a document whose log weight is
# more than this below the current k-th key can never enter the top k, so its noise need not be
# computed. Exact, not a heuristic.
GUMBEL_MAX = float(gumbel_from_uniform(uniform_from_bits(np.array([2**64 - 1], dtype=np.uint64)))[0])


# -- bounded top-k --------------------------------------------------------------------------------


class StreamingTopK:
    """The k rows with the largest keys of a stream of batches (ties: smaller doc_id first).

    Holds fewer than 2k + batch rows: rows below the current k-th key are dropped on arrival,
    and the buffer is cut back to k whenever it reaches 2k. `peak_rows` records the
    most rows ever held, for tests and reports.
    """

    def __init__(self, k: int):
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        self.k = k
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._held = 0
        self._threshold = -np.inf
        self.peak_rows = 0
        self.seen = 0
        self._final = False

    @property
    def threshold(self) -> float:
        """A key must be at least this to enter (-inf until k rows are held)."""
        return self._threshold

    def push(self, keys: np.ndarray, doc_ids: np.ndarray, log_weights: np.ndarray, noise: np.ndarray) -> None:
        if self._final:
            raise RuntimeError("StreamingTopK.push after result()")
        self.seen += len(keys)
        if self.k == 0 or len(keys) == 0:
            return
        if self._threshold > -np.inf:
            keep = keys >= self._threshold
            if not keep.all():
                keys, doc_ids, log_weights, noise = keys[keep], doc_ids[keep], log_weights[keep], noise[keep]
        if len(keys) == 0:
            return
        self._parts.append((keys, doc_ids, log_weights, noise))
        self._held += len(keys)
        self.peak_rows = max(self.peak_rows, self._held)
        if self._held >= 2 * self.k:
            self._compact()

    def _compact(self) -> None:
        keys, doc_ids, log_weights, noise = (np.concatenate(c) for c in zip(*self._parts))
        order = np.lexsort((doc_ids, -keys))[: self.k]
        self._parts = [(keys[order], doc_ids[order], log_weights[order], noise[order])]
        self._held = len(order)
        if self._held == self.k:
            self._threshold = float(keys[order[-1]])

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys, doc_ids, log_weights, noise) of the top k, best first."""
        if not self._parts:
            return np.empty(0), np.empty(0, dtype="U1"), np.empty(0), np.empty(0)
        if not self._final:
            self._compact()
            self._final = True
        return self._parts[0]


# -- candidates -----------------------------------------------------------------------------------



def candidate_query(weights_view: str, target: str, selection: DsirSelection) -> str:
    """SQL yielding (doc_id, log_weight) of `target`'s candidates; one parameter: min length."""
    column = weight_column(target)
    sql = (f'SELECT doc_id, "{column}" AS log_weight FROM "{weights_view}" '
           f'WHERE "{NUM_TOKENS_COLUMN}" >= $min_length')
    if selection.where:
        where = single_statement(selection.where, "SELECT 1 WHERE ({})", label="selection.where",
                                 error=SelectionError)
        sql += f' AND doc_id IN (SELECT doc_id FROM "{selection.where_view}" WHERE ({where}))'
    if selection.candidates_sql:
        query = single_statement(selection.candidates_sql, "SELECT * FROM ({})", label="selection.candidates_sql",
                                 error=SelectionError)
        sql += f" AND doc_id IN (SELECT doc_id FROM ({query}))"
    return sql


def stream_candidates(
    con: duckdb.DuckDBPyConnection, sql: str, min_length: int, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    try:
        # con.sql streams; an execute() result would be materialised before Arrow sees it.
        reader = con.sql(sql, params={"min_length": min_length}).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise SelectionError(f"candidate query failed: {exc}\n  query: {sql}") from None
    yield from reader


@dataclass
class TargetPick:
    """One target's selection (and its uniform random baseline) from one pass over candidates."""

    target: str
    quota: int
    top: StreamingTopK
    baseline: StreamingTopK | None
    stats: LogWeightStats
    candidates: int = 0


def pick_target(
    batches: Iterable[pa.RecordBatch],
    target: str,
    quota: int,
    *,
    method: str,
    seed: int,
    exclude: set[str] | frozenset[str] = frozenset(),
    baseline_exclude: set[str] | frozenset[str] | None = None,
) -> TargetPick:
    """Stream (doc_id, log_weight) batches into a bounded top-`quota` (and, when
    `baseline_exclude` is given, a same-size uniform random pick over the same candidates).
    `exclude` holds doc_ids already chosen for earlier targets (at most k of them)."""
    pick = TargetPick(target, quota, StreamingTopK(quota),
                      StreamingTopK(quota) if baseline_exclude is not None else None, LogWeightStats())
    for batch in batches:
        doc_ids = batch.column(0).to_pylist()
        log_weights = batch.column(1).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        pick.candidates += len(doc_ids)
        pick.stats.update(log_weights)
        for topk, excluded, stream in ((pick.top, exclude, target),
                                       (pick.baseline, baseline_exclude, f"random/{target}")):
            if topk is None:
                continue
            ids, lw = doc_ids, log_weights
            keep = None
            if topk is pick.top and topk.threshold > -np.inf:
                # Weights far below the k-th key cannot win whatever their noise (see GUMBEL_MAX).
                keep = lw + (GUMBEL_MAX if method == "gumbel" else 0.0) >= topk.threshold
            if excluded:
                allowed = np.fromiter((d not in excluded for d in doc_ids), dtype=bool, count=len(doc_ids))
                keep = allowed if keep is None else keep & allowed
            if keep is not None and not keep.all():
                ids, lw = [d for d, k in zip(doc_ids, keep) if k], log_weights[keep]
            if topk is pick.baseline:
                noise = uniform_noise(ids, seed, stream)
                keys = noise
            elif method == "gumbel":
                noise = gumbel_noise(ids, seed, stream)
                keys = lw + noise
            else:
                noise = np.full(len(ids), np.nan)
                keys = lw
            topk.push(keys, np.array(ids, dtype=str), lw, noise)
    return pick


def target_quotas(k: int, targets: Sequence[str], proportions: dict[str, float]) -> list[int]:
    """The reference's split: int(k * p) per target, the remainder to the last target."""
    total = sum(proportions.get(t, 0.0) for t in targets)
    quotas = [int(k * proportions.get(t, 0.0) / total) for t in targets]
    quotas[-1] += k - sum(quotas)
    return quotas


def resolve_proportions(fitted: FittedDsir, selection: DsirSelection) -> dict[str, float]:
    if selection.proportions is not None:
        unknown = set(selection.proportions) - set(fitted.targets)
        if unknown:
            raise SelectionError(f"proportions name targets {sorted(unknown)} that fit {fitted.fit_hash} "
                                 f"does not have; it has {list(fitted.targets)}")
        raw = {t: float(selection.proportions.get(t, 0.0)) for t in fitted.targets}
    else:
        raw = {t: float(n) for t, n in fitted.target_sizes().items()}  # as the reference
    total = sum(raw.values())
    return {t: p / total for t, p in raw.items()}


def check_weights_current(run: RunDir, scorer: DsirScorer) -> None:
    """Every shard of the run must have dsir weights written under this fit."""
    stale = []
    for table, shard_id, _ in run.data_parts():
        expected = score_cache_key(run, scorer, table, shard_id)
        if read_cache_key(run.score_part(scorer_key(scorer), shard_id)) != expected:
            stale.append(shard_id)
    if stale:
        raise SelectionError(
            f"{len(stale)} shard(s) of {run.root} lack weights from DSIR fit {scorer.fit_hash} "
            f"(e.g. {stale[0]}): run `thresher dsir weight` first")


def selection_dir(run: RunDir, name: str):
    return run.root / "selections" / name


def baseline_path(run: RunDir, name: str):
    return run.root / "dsir" / "baselines" / f"{name}.parquet"


def resolve_seed(run: RunDir, selection: DsirSelection) -> int:
    if selection.seed is not None:
        return selection.seed
    return int(run.read_manifest().get("seed", 0)) if run.exists() else 0


def select_dsir(
    run: RunDir, fitted: FittedDsir, selection: DsirSelection, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> dict:
    """Select `selection.k` documents of `run` toward the fit's targets; write
    `selections/<name>/selected.parquet` + `selection.json`; return the selection's metadata."""
    scorer = DsirScorer.from_fit(fitted)
    check_weights_current(run, scorer)
    seed = resolve_seed(run, selection)
    proportions = resolve_proportions(fitted, selection)
    quotas = target_quotas(selection.k, fitted.targets, proportions)
    view = score_view_name(scorer_key(scorer), versioned=True)

    chosen: set[str] = set()
    baseline_chosen: set[str] = set()
    picks: list[TargetPick] = []
    with open_catalog(run) as con:
        for target, quota in zip(fitted.targets, quotas):
            sql = candidate_query(view, target, selection)
            pick = pick_target(
                stream_candidates(con, sql, selection.min_example_length, batch_rows), target, quota,
                method=selection.method, seed=seed, exclude=chosen,
                baseline_exclude=baseline_chosen if selection.random_baseline else None,
            )
            picks.append(pick)
            chosen.update(pick.top.result()[1].tolist())
            if pick.baseline is not None:
                baseline_chosen.update(pick.baseline.result()[1].tolist())

    def selected_batches() -> Iterator[pa.RecordBatch]:
        for pick in picks:
            keys, doc_ids, log_weights, noise = pick.top.result()
            n = len(keys)
            yield pa.RecordBatch.from_arrays(
                [pa.array(doc_ids.tolist(), pa.string()), pa.array([pick.target] * n, pa.string()),
                 pa.array(np.arange(1, n + 1), pa.int64()), pa.array(log_weights, pa.float64()),
                 pa.array(noise, pa.float64(), mask=np.isnan(noise)), pa.array(keys, pa.float64())],
                schema=SELECTED_SCHEMA)

    out_dir = selection_dir(run, selection.name)
    rows = write_table_atomic(out_dir / "selected.parquet", selected_batches(), SELECTED_SCHEMA)
    if selection.random_baseline:
        baseline_ids = [d for p in picks for d in p.baseline.result()[1].tolist()]
        baseline_targets = [p.target for p in picks for _ in range(len(p.baseline.result()[1]))]
        write_table_atomic(baseline_path(run, selection.name), [pa.RecordBatch.from_arrays(
            [pa.array([selection.name] * len(baseline_ids), pa.string()), pa.array(baseline_ids, pa.string()),
             pa.array(baseline_targets, pa.string())], schema=BASELINE_SCHEMA)], BASELINE_SCHEMA)
    metadata = {
        "name": selection.name,
        "method": selection.method,
        "seed": seed,
        "k": selection.k,
        "selected_rows": rows,
        "fit_hash": fitted.fit_hash,
        "weights": scorer_key(scorer),
        "selection": selection.model_dump(mode="json"),
        "selection_hash": selection.content_hash(),
        "proportions": proportions,
        "targets": [
            {"target": p.target, "quota": p.quota, "candidates": p.candidates,
             "selected": len(p.top.result()[0]), "peak_rows_held": p.top.peak_rows,
             "log_weights": p.stats.summary()}
            for p in picks
        ],
        "thresher_version": __version__,
    }
    write_json_atomic(out_dir / "selection.json", metadata)
    return metadata


def read_selection(run: RunDir, name: str) -> tuple[dict, pa.Table]:
    """A written selection's metadata and rows."""
    directory = selection_dir(run, name)
    meta_path = directory / "selection.json"
    if not meta_path.is_file():
        raise SelectionError(f"{run.root} has no selection {name!r}")
    return json.loads(meta_path.read_text(encoding="utf-8")), pq.read_table(directory / "selected.parquet")
