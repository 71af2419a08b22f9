"""What each arm trains on and what every model is measured on, as token arrays in the run.

    eval/runs/<name>/data/<arm>/seed-<s>.npy         int32 token ids, exactly `tokens` of them
    eval/runs/<name>/data/<arm>/seed-<s>.docs.parquet the doc_ids they came from, in order
    eval/runs/<name>/data/eval-<set>.npy             an eval set's token ids
    eval/runs/<name>/plan.json                       budget, sizes, hashes, overlap findings

An arm's documents are read in a seeded order (md5 of seed and doc_id, computed by DuckDB, so the
order does not depend on how the table is sharded) and encoded until the budget is reached: a
selection larger than the budget contributes a random part of itself, the random arm a random
sample of its pool. Rows an eval set took from the trained table never reach any arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.decontam.index import BuildCounts, benchmark_shards, benchmark_texts
from thresher.eval.config import RANDOM_ARM, EvalConfig, EvalSetSpec
from thresher.eval.overlap import OverlapTally, ngram_index
from thresher.eval.tokens import Tokenizer
from thresher.storage.catalog import open_catalog, stage_view_name
from thresher.storage.parquet_io import write_table_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import quote_ident, single_statement

_BATCH_ROWS = 512


class EvalDataError(ValueError):
    """An eval config that cannot run on this run (a missing selection, too little data, bad SQL)."""


def eval_root(run: RunDir, name: str) -> Path:
    return run.root / "eval" / "runs" / name


def arm_path(run: RunDir, name: str, arm: str, seed: int) -> Path:
    return eval_root(run, name) / "data" / arm / f"seed-{seed}.npy"


def eval_set_path(run: RunDir, name: str, set_name: str) -> Path:
    return eval_root(run, name) / "data" / f"eval-{set_name}.npy"


def digest(array: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=12).hexdigest()


def save_tokens(path: Path, tokens: np.ndarray) -> None:
    """Write atomically (a killed plan leaves the old file or none, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, tokens.astype(np.int32), allow_pickle=False)
    tmp.replace(path)


def load_tokens(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


@dataclass
class EvalSetData:
    name: str
    tokens: np.ndarray
    texts: int
    index: np.ndarray  # its n-gram hashes, for the overlap check


def _catalog_batches(run: RunDir, sql: str, params: list | None = None) -> Iterator[pa.RecordBatch]:
    with open_catalog(run) as con:
        yield from con.sql(sql, params=params).to_arrow_reader(_BATCH_ROWS)


def _set_batches(run: RunDir, spec: EvalSetSpec) -> Iterator[pa.RecordBatch]:
    """The rows of an SQL eval set (checked to hold `text`)."""
    query = single_statement(spec.sql or "", "{}", label=f"eval set {spec.name!r}: sql", error=EvalDataError)
    try:
        for batch in _catalog_batches(run, query):
            if "text" not in batch.schema.names:
                raise EvalDataError(f"eval set {spec.name!r}: its sql must return a `text` column")
            yield batch
    except EvalDataError:
        raise
    except Exception as exc:  # duckdb errors: name the set
        raise EvalDataError(f"eval set {spec.name!r}: its sql failed: {exc}") from None


def eval_set_doc_ids(run: RunDir, spec: EvalSetSpec) -> list[str]:
    """Every doc_id an SQL eval set returns: those rows are left out of every arm."""
    if not spec.sql:
        return []
    return [d for batch in _set_batches(run, spec) if "doc_id" in batch.schema.names
            for d in batch.column("doc_id").to_pylist() if d is not None]


def _set_texts(run: RunDir, spec: EvalSetSpec) -> Iterator[str]:
    if spec.paths:
        benchmark = spec.benchmark()
        for batch in benchmark_texts(benchmark, benchmark_shards(benchmark), BuildCounts()):
            yield from (t for t in batch if t)
        return
    for batch in _set_batches(run, spec):
        yield from (t for t in batch.column("text").to_pylist() if t)


def read_eval_set(run: RunDir, spec: EvalSetSpec, config: EvalConfig, tokenizer: Tokenizer) -> EvalSetData:
    used: list[str] = []

    def recorded() -> Iterator[str]:
        for text in _set_texts(run, spec):
            used.append(text)
            yield text

    tokens, texts = tokenizer.encode_until(recorded(), spec.max_tokens)
    if tokens.size < config.model.context + 1:
        raise EvalDataError(f"eval set {spec.name!r}: {tokens.size} tokens, fewer than one window of "
                            f"{config.model.context + 1}")
    # Only the texts that were encoded are evaluated, so only their n-grams are checked against training.
    return EvalSetData(spec.name, tokens, texts, ngram_index(used[:texts], config.overlap_n))


def _arm_query(config: EvalConfig, arm: str) -> str:
    table = quote_ident(config.table)
    order = "ORDER BY md5(CAST(? AS VARCHAR) || ':' || t.doc_id)"
    keep = "t.doc_id NOT IN (SELECT unnest(CAST(? AS VARCHAR[])))"
    if arm == RANDOM_ARM:
        where = f"({config.random_where}) AND " if config.random_where else ""
        if config.random_where:
            single_statement(config.random_where, "SELECT 1 WHERE ({})", label="random_where", error=EvalDataError)
        return (f"SELECT t.doc_id, t.text FROM {quote_ident(config.table + '_scored')} t "
                f"WHERE {where}{keep} {order}")
    selected = quote_ident(stage_view_name("selections", arm))
    return f"SELECT t.doc_id, t.text FROM {table} t JOIN {selected} s USING (doc_id) WHERE {keep} {order}"


def arm_documents(run: RunDir, config: EvalConfig, arm: str, seed: int,
                  excluded: list[str]) -> Iterator[tuple[list[str], list[str]]]:
    """(doc_ids, texts) batches of an arm's documents in its seeded order."""
    try:
        for batch in _catalog_batches(run, _arm_query(config, arm), [excluded, str(seed)]):
            yield batch.column("doc_id").to_pylist(), [t or "" for t in batch.column("text").to_pylist()]
    except EvalDataError:
        raise
    except Exception as exc:
        raise EvalDataError(f"eval {config.name!r}, arm {arm!r}: reading its documents failed: {exc}") from None


@dataclass
class ArmData:
    arm: str
    seed: int
    tokens: np.ndarray
    doc_ids: list[str]
    overlap: OverlapTally


def encode_arm(run: RunDir, config: EvalConfig, tokenizer: Tokenizer, arm: str, seed: int, budget: int,
               excluded: list[str], indexes: dict[str, np.ndarray]) -> ArmData:
    """The arm's first `budget` tokens in its seeded order, and the overlap of those documents."""
    parts: list[np.ndarray] = []
    used: list[str] = []
    total = 0
    tally = OverlapTally(config.max_overlap)
    for doc_ids, texts in arm_documents(run, config, arm, seed, excluded):
        take_ids, take_texts = [], []
        for doc_id, text in zip(doc_ids, texts):
            if total >= budget:
                break
            ids = tokenizer.encode(text)
            parts.append(ids)
            total += ids.size
            take_ids.append(doc_id)
            take_texts.append(text)
        tally.add(take_ids, take_texts, indexes, config.overlap_n)
        used += take_ids
        if total >= budget:
            break
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return ArmData(arm, seed, stream[:budget], used, tally)


def pool_sample(run: RunDir, config: EvalConfig, seed: int, excluded: list[str], chars: int) -> Iterator[str]:
    """The random arm's documents in its seeded order, up to `chars` characters (what the BPE learns from)."""
    total = 0
    for _, texts in arm_documents(run, config, RANDOM_ARM, seed, excluded):
        for text in texts:
            if total >= chars:
                return
            total += len(text)
            yield text


def arm_size(run: RunDir, config: EvalConfig, tokenizer: Tokenizer, arm: str, excluded: list[str]) -> int:
    """Tokens of a selection (read up to `max_tokens`)."""
    total = 0
    for _, texts in arm_documents(run, config, arm, 0, excluded):
        for text in texts:
            total += tokenizer.encode(text).size
            if total >= config.max_tokens:
                return config.max_tokens
    return total


def save_arm(run: RunDir, name: str, data: ArmData) -> str:
    path = arm_path(run, name, data.arm, data.seed)
    save_tokens(path, data.tokens)
    docs = pa.table({"doc_id": pa.array(data.doc_ids, pa.string())})
    write_table_atomic(path.with_suffix(".docs.parquet"), docs.to_batches(), docs.schema)
    return digest(data.tokens)
