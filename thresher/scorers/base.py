"""The Scorer contract every scoring stage implements.

A scorer is a frozen dataclass whose fields are its parameters. `score` maps a record batch with
at least `doc_id` and `text` to a batch with `doc_id` plus the scorer's columns, the same rows in
the same order. Scorers never drop rows: thresholds live in selection recipes. Models load lazily
on first use so that a scorer pickles cheaply to worker processes. A change of behaviour bumps
`version`, which changes the sidecar directory (`scores/<name>@<version>/`) and the cache key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import ClassVar, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Scorer(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]

    @property
    def output_schema(self) -> pa.Schema: ...

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...


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
