"""Near-duplicate removal: exact hashes and MinHash LSH with out-of-core clustering in DuckDB.

Plain functions (no Prefect needed): `dedup_run` for a whole run directory, or the three steps
`signature_shard`, `cluster_table` and `write_sidecars` that the `thresher-dedup` flow maps over
shards. See `thresher.dedup.tables` for what lands where.

Names are imported lazily, so that `thresher.config` can import `thresher.dedup.config` without
pulling in the stage (and its imports of the storage layer).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DedupConfig": "thresher.dedup.config",
    "MinHasher": "thresher.dedup.minhash",
    "estimate_jaccard": "thresher.dedup.minhash",
    "signature_shard": "thresher.dedup.stage",
    "cluster_table": "thresher.dedup.stage",
    "write_sidecars": "thresher.dedup.stage",
    "dedup_run": "thresher.dedup.stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'thresher.dedup' has no attribute {name!r}")
