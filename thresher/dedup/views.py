"""What the dedup stage writes that a reader (the dashboard) shows, declared next to its schemas.

Each of the stage's cluster tables, as the catalog names it, with its columns by role: the two
sidecars (`score_exact_dedup`, `score_minhash_dedup`: every document once) and the cluster tables
(`dedup_exact_clusters`, `dedup_clusters`: members of clusters only, prior runs' documents
included). Readers take names from here instead of matching `*cluster_id` patterns;
`tests/dashboards` checks every declaration against the schemas in `thresher.dedup.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from thresher.dedup.tables import (
    CLUSTERS_SCHEMA,
    EXACT_CLUSTERS_SCHEMA,
    EXACT_KEY,
    EXACT_SIDECAR_SCHEMA,
    MINHASH_KEY,
    MINHASH_SIDECAR_SCHEMA,
)
from thresher.storage.catalog import score_view_name


@dataclass(frozen=True)
class ClusterColumns:
    """One table of duplicate clusters: which view, and its columns by role."""

    view: str
    schema: pa.Schema  # what the stage writes (for the contract test)
    cluster: str  # the cluster key (members share it)
    size: str  # members of the cluster
    survivor: str  # the doc_id the cluster keeps
    is_duplicate: str  # boolean: a member that is not the survivor
    prior_run: str | None = None  # the prior run a member belongs to (null: this run); sidecars have none
    sidecar: bool = False  # one row per document of the run (not only cluster members)
    method: str = ""


def _table(schema: pa.Schema) -> str:
    return schema.metadata[b"thresher.table"].decode()


CLUSTER_TABLES: tuple[ClusterColumns, ...] = (
    ClusterColumns(score_view_name(EXACT_KEY, versioned=False), EXACT_SIDECAR_SCHEMA, cluster="exact_hash",
                   size="exact_cluster_size", survivor="exact_survivor_id", is_duplicate="exact_is_duplicate",
                   sidecar=True, method="exact (hash of normalised text)"),
    ClusterColumns(score_view_name(MINHASH_KEY, versioned=False), MINHASH_SIDECAR_SCHEMA,
                   cluster="minhash_cluster_id", size="minhash_cluster_size", survivor="minhash_survivor_id",
                   is_duplicate="minhash_is_duplicate", sidecar=True, method="near (MinHash LSH)"),
    ClusterColumns(_table(EXACT_CLUSTERS_SCHEMA), EXACT_CLUSTERS_SCHEMA, cluster="exact_hash",
                   size="exact_cluster_size", survivor="exact_survivor_id", is_duplicate="exact_is_duplicate",
                   prior_run="prior_run", method="exact (hash of normalised text)"),
    ClusterColumns(_table(CLUSTERS_SCHEMA), CLUSTERS_SCHEMA, cluster="cluster_id", size="cluster_size",
                   survivor="survivor_id", is_duplicate="is_duplicate", prior_run="prior_run",
                   method="near (MinHash LSH)"),
)

# Other tables of the stage (signatures, band keys, edges) are listed by readers as `dedup_*` views.
TABLE_PREFIX = "dedup_"
