"""The dedup index of a run: its per-shard signature and band-key files, and where they live.

A run's index is what its dedup stage left in `<run>/dedup/signatures/` and
`<run>/dedup/band_keys/`, plus `<run>/dedup/params.json`. A later run deduplicates against the
indexes of earlier runs (`DedupConfig.prior_runs`) by reading those files as they are: nothing of a
prior run is recomputed, which requires that both runs hashed with the same signature parameters
(n-gram, permutations, seed, bands, rows, normaliser and hash scheme); anything else is an error
that says which parameter differs.

In the cluster step every document is a node with a 64-bit id: `doc_key` (blake2b-64 of doc_id)
for this run's documents, `doc_key XOR salt(i)` for the i-th prior run's, so that the same
document ingested by two runs is two nodes (the new copy is a duplicate of the old one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.dedup.config import DedupConfig, params_hash
from thresher.dedup.tables import DATA_TABLE_METADATA, band_keys_path, params_path, signatures_path
from thresher.storage.parquet_io import read_cache_key, write_json_atomic
from thresher.storage.run_dir import RunDir

# Bump when the signature/band-key files of a shard change for the same input and parameters.
SIGNATURES_VERSION = "1"


class DedupIndexError(ValueError):
    """A prior run's dedup index cannot be used by this run."""


class IncompatibleIndexError(DedupIndexError):
    """The prior run was hashed with other signature parameters."""


class MissingIndexError(DedupIndexError):
    """The prior run has not been deduplicated, or its index files are gone or stale."""


@dataclass(frozen=True)
class IndexPart:
    """One shard's index files. run_idx 0 is the run being deduplicated, i > 0 its i-th prior run."""

    run_idx: int
    run_root: Path
    table: str
    shard_id: str
    data: Path
    signatures: Path
    band_keys: Path

    @property
    def prior_run(self) -> str | None:
        return str(self.run_root) if self.run_idx else None


def signature_key_prefix(config: DedupConfig) -> str:
    return f"dedup-signatures@{SIGNATURES_VERSION}:{params_hash(config.signature_params())}"


def signature_cache_key(run: RunDir, config: DedupConfig, table: str, shard_id: str) -> str:
    """The data part's own cache key (its content identity) + version + signature params hash."""
    input_key = read_cache_key(run.table_part(table, shard_id))
    if input_key is None:
        raise FileNotFoundError(f"{run.table_part(table, shard_id)} is missing or was not written by thresher")
    return f"{signature_key_prefix(config)}<-{input_key}"


def node_salt(run_idx: int) -> int:
    """The signed 64-bit value XORed into the doc_key of the run_idx-th prior run's documents."""
    if run_idx == 0:
        return 0
    digest = hashlib.blake2b(f"thresher-dedup-prior-run:{run_idx}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def write_params(run: RunDir, config: DedupConfig) -> dict:
    """Record the parameters and seeds of the run's index in `dedup/params.json`."""
    payload = {
        "signature_params": config.signature_params(),
        "signature_key_prefix": signature_key_prefix(config),
        "config": config.model_dump(mode="json"),
    }
    write_json_atomic(params_path(run), payload)
    return payload


def this_run_parts(run: RunDir, table: str) -> list[IndexPart]:
    return [IndexPart(0, run.root, t, shard_id, path, signatures_path(run, shard_id), band_keys_path(run, shard_id))
            for t, shard_id, path in run.data_parts() if t == table]


def prior_run_parts(prior_root: str | Path, run_idx: int, config: DedupConfig, table: str) -> list[IndexPart]:
    """The index parts of a prior run's `table`, after checking they are usable by `config`."""
    prior = RunDir(prior_root)
    where = params_path(prior)
    if not where.is_file():
        raise MissingIndexError(f"prior run {prior.root} has no dedup index ({where} is missing): "
                                f"run the dedup stage on it first")
    status = prior.read_manifest().get("stages", {}).get("dedup", {}).get("status") if prior.exists() else None
    if status != "finished":
        raise MissingIndexError(f"prior run {prior.root}: its dedup stage is {status or 'missing'}, not finished")
    recorded = json.loads(where.read_text(encoding="utf-8"))["signature_params"]
    wanted = config.signature_params()
    if recorded != wanted:
        diff = {k: (recorded.get(k), wanted.get(k)) for k in sorted(set(recorded) | set(wanted))
                if recorded.get(k) != wanted.get(k)}
        raise IncompatibleIndexError(
            f"prior run {prior.root} was hashed with other signature parameters; (prior, this run): {diff}")
    # The index is enumerated from its own files, so it stays usable after the prior run's
    # documents were deleted (only `verify` needs their text).
    prefix = signature_key_prefix(config)
    parts = []
    for sig in sorted((prior.root / "dedup" / "signatures").glob("part-*.parquet")):
        shard_id = sig.name[len("part-") : -len(".parquet")]
        try:
            metadata = pq.read_schema(sig).metadata or {}
        except (OSError, pa.ArrowInvalid):
            metadata = {}
        if metadata.get(DATA_TABLE_METADATA, b"").decode() != table:
            continue
        part = IndexPart(run_idx, prior.root, table, shard_id, prior.table_part(table, shard_id), sig,
                         band_keys_path(prior, shard_id))
        for file in (part.signatures, part.band_keys):
            key = read_cache_key(file)
            if key is None or not key.startswith(prefix + "<-"):
                raise MissingIndexError(f"prior run {prior.root}: {file} is missing or stale: "
                                        f"run the dedup stage on that run again")
        parts.append(part)
    return parts


def index_parts(run: RunDir, config: DedupConfig, table: str) -> list[IndexPart]:
    """This run's parts of `table` followed by those of every prior run, in config order."""
    parts = this_run_parts(run, table)
    seen = {run.root}
    for i, prior in enumerate(config.prior_runs, start=1):
        root = RunDir(prior).root
        if root in seen:
            raise ValueError(f"prior run {root} is this run or listed twice")
        seen.add(root)
        parts += prior_run_parts(root, i, config, table)
    return parts
