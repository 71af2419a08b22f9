"""What the augment stage writes that a reader (the dashboard) shows, declared next to its schemas.

An augmented run's catalog has the stage's tables as views (`augment_attempts`, `augment_seeds`,
`augment_lineage`: the catalog names a stage table `<stage dir>_<table dir>`, the same name the
schemas carry in their "thresher.table" metadata) and the derived view `augment_survival`
(`thresher.augment.report.catalog_views`). `EVOL` names their columns by role, so readers never
guess them; `tests/dashboards` checks it against `ATTEMPT_SCHEMA`.
"""

from __future__ import annotations

from dataclasses import dataclass

from thresher.augment.eliminate import ELIMINATION_REASONS
from thresher.augment.tables import ATTEMPT_SCHEMA, LINEAGE_SCHEMA, SEED_SCHEMA


def _table_name(schema) -> str:
    return schema.metadata[b"thresher.table"].decode()


@dataclass(frozen=True)
class EvolViews:
    attempts_view: str = _table_name(ATTEMPT_SCHEMA)  # every attempt, survived or eliminated
    seeds_view: str = _table_name(SEED_SCHEMA)
    lineage_view: str = _table_name(LINEAGE_SCHEMA)
    survival_view: str = "augment_survival"  # round x operation; made by report.catalog_views

    # augment_attempts, by role
    attempt_id: str = "attempt_id"
    parent_id: str = "parent_id"
    root_id: str = "root_id"
    round: str = "round"
    depth: str = "depth"
    operation: str = "operation"
    survived: str = "survived"  # boolean, never null
    reason: str = "elimination_reason"  # null for survivors, else one of `reasons`
    reason_detail: str = "elimination_detail"
    parent_instruction: str = "parent_instruction"
    instruction: str = "evolved_instruction"
    response: str = "response"  # null when eliminated before a response was generated

    # augment_survival: per (round, operation) these counts, and one count column per reason
    attempts: str = "attempts"
    survivors: str = "survived"
    survival_rate: str = "survival_rate"
    reasons: tuple[str, ...] = ELIMINATION_REASONS


EVOL = EvolViews()
