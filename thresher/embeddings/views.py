"""What semantic dedup writes that a reader (the dashboard) shows, declared next to its schemas.

SemDeDup's groups are duplicate clusters like the dedup stage's, so they are declared with the
dedup stage's `ClusterColumns`: the sidecar `score_semdedup` (every embedded row once) and the
`semdedup_groups` table (members of groups of two or more). `tests/dashboards` checks these
against `thresher.embeddings.semdedup`'s schemas.
"""

from __future__ import annotations

from thresher.dedup.views import ClusterColumns
from thresher.embeddings.semdedup import GROUPS_SCHEMA, SEMDEDUP_KEY, SIDECAR_SCHEMA
from thresher.storage.catalog import score_view_name

SEMDEDUP_TABLES: tuple[ClusterColumns, ...] = (
    ClusterColumns(score_view_name(SEMDEDUP_KEY, versioned=False), SIDECAR_SCHEMA, cluster="semdedup_group",
                   size="semdedup_group_size", survivor="semdedup_survivor_id", is_duplicate="semdedup_is_duplicate",
                   sidecar=True, method="semantic (SemDeDup on embeddings)"),
    ClusterColumns(GROUPS_SCHEMA.metadata[b"thresher.table"].decode(), GROUPS_SCHEMA, cluster="group_id",
                   size="group_size", survivor="survivor_id", is_duplicate="is_duplicate",
                   method="semantic (SemDeDup on embeddings)"),
)
