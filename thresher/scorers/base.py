"""The Scorer contract every scoring stage implements.

A scorer is a frozen dataclass whose fields are its parameters. `score` maps a record batch of
the scorer's `input_columns` (at least `doc_id`) to a batch with `doc_id` plus the scorer's
columns, the same rows in the same order. Scorers never drop rows: thresholds live in selection
recipes. Models load lazily on first use so that a scorer pickles cheaply to worker processes. A
change of behaviour bumps `version`, which changes the sidecar directory
(`scores/<name>@<version>/`) and the cache key.

Everything the rest of thresher reads from a scorer is declared by `Scorer`; `ScorerBase` gives
the defaults, so a scorer states only what differs (no caller guesses with `getattr`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal, Protocol, runtime_checkable

import pyarrow as pa

DataTable = Literal["documents", "instructions"]
# The stage that runs a scorer: "score" (a recipe's `scorers:`, `thresher score`) or "judge" (a
# recipe's `judges:`, `thresher judge run`: it reads its `table` only, caches judgments in its
# `cache_dir` parameter and counts what it did into the `stats` Counter).
Stage = Literal["score", "judge"]
TEXT_INPUT: tuple[str, ...] = ("doc_id", "text")


@runtime_checkable
class Scorer(Protocol):
    # The sidecar's stem and version. Class constants, or properties where a parameter names the
    # output (an embedding's `tag`, a judge's `mode`, a distilled head): see `column_params`.
    name: str
    version: str
    # The data table it reads ("documents", "instructions"), or None: every table.
    table: DataTable | None
    # The columns `score` reads (the shard runner reads only these).
    input_columns: tuple[str, ...]
    # The columns after doc_id, known from the class alone (`thresher scorers` lists them without
    # building anything); "{name}" stands for the scorer's name.
    output_columns: tuple[str, ...]
    # Parameters that change the output columns (their names or shape) -> how.
    column_params: Mapping[str, str]
    # The column holding a perplexity (the perplexity stage publishes its distribution), or None.
    perplexity_column: str | None
    stage: Stage
    # The (lowest, highest) value its main score takes when the scale is fixed (a prompt judge's
    # 0-5), else None; calibration rounds scores into it.
    score_range: tuple[float, float] | None

    @property
    def output_schema(self) -> pa.Schema: ...

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        """Score `batch`; a scorer with something to count (cache hits, parse failures) adds it to
        `stats`, the others ignore it."""
        ...

    def prepare(self) -> None:
        """Check (and convert) what the scorer needs before any task starts: a missing model
        fails once, in the driver, not in every worker."""
        ...


class ScorerBase:
    """The Scorer protocol's defaults. A plain class, not a dataclass: it adds no parameters."""

    name: ClassVar[str]
    version: ClassVar[str]
    output_columns: ClassVar[tuple[str, ...]]
    table: ClassVar[DataTable | None] = None
    input_columns: ClassVar[tuple[str, ...]] = TEXT_INPUT
    column_params: ClassVar[Mapping[str, str]] = MappingProxyType({})
    perplexity_column: ClassVar[str | None] = None
    stage: ClassVar[Stage] = "score"
    score_range: ClassVar[tuple[float, float] | None] = None

    def prepare(self) -> None:
        """Nothing to check: the scorer needs no file."""


def scorer_key(scorer: Scorer) -> str:
    """`name@version`, the scorer's sidecar directory name."""
    return f"{scorer.name}@{scorer.version}"


def scorer_params(scorer: Scorer) -> dict:
    return dataclasses.asdict(scorer) if dataclasses.is_dataclass(scorer) else {}


def scorer_params_hash(scorer: Scorer) -> str:
    """A hash of the scorer's parameters, part of every cache key for its output."""
    payload = json.dumps(scorer_params(scorer), sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def check_output(scorer: Scorer, batch: pa.RecordBatch, result: pa.RecordBatch) -> pa.RecordBatch:
    """Enforce the contract: same rows, same order, the declared schema."""
    if result.num_rows != batch.num_rows:
        raise ValueError(
            f"scorer {scorer_key(scorer)} returned {result.num_rows} rows for {batch.num_rows}"
        )
    if not result.schema.equals(scorer.output_schema, check_metadata=False):
        raise ValueError(
            f"scorer {scorer_key(scorer)} returned schema {result.schema}, "
            f"declared {scorer.output_schema}"
        )
    if not result.column("doc_id").equals(batch.column("doc_id")):
        raise ValueError(f"scorer {scorer_key(scorer)} reordered or changed doc_id")
    return result


def require_input_columns(scorer: Scorer, names: list[str], where: str) -> None:
    """Raise naming what `scorer` reads and what `where` lacks; scorers that read more than `text`
    (judges) call it on every batch, `score_shard` once per shard."""
    missing = [c for c in scorer.input_columns if c not in names]
    if missing:
        raise ValueError(
            f"{scorer_key(scorer)} reads {', '.join(scorer.input_columns)} of the {scorer.table or 'data'} table; "
            f"{where} lacks {', '.join(missing)}. Run it through `score_shard` (e.g. `thresher judge run`).")
