"""Evol-Instruct survival: attempts and survivors per round and per operation, eliminations by
reason, and a few attempts to read, from the views the augment stage declares
(`thresher.augment.views.EVOL`: `augment_survival`, `augment_attempts`).

An augmented run is a run directory of its own (`<source>/augment/<name>/`): open the dashboard
on it to see this panel.
"""

from __future__ import annotations

from dataclasses import dataclass

from thresher.augment.views import EVOL
from thresher.dashboards.catalog import Catalog, NotFound, quote_ident


def evol_applies(cat: Catalog) -> bool:
    e = EVOL
    return (cat.has_columns(e.survival_view, e.round, e.operation, e.attempts, e.survivors)
            and cat.has_columns(e.attempts_view, e.round, e.operation, e.survived, e.reason))


def evol_views(cat: Catalog) -> list[str]:
    return [EVOL.attempts_view] if evol_applies(cat) else []


@dataclass(frozen=True)
class EvolAttempt:
    round: int
    operation: str
    survived: bool
    reason: str | None
    detail: str | None
    parent_instruction: str
    instruction: str
    response: str | None


@dataclass(frozen=True)
class EvolSurvival:
    view: str  # the attempts view
    rows: int  # attempts
    survived: int
    per_round: list[tuple[str, int, int]]  # (round, attempts, survived)
    per_operation: list[tuple[str, int, int]]  # (operation, attempts, survived), every round together
    reasons: list[tuple[str, int]]  # (elimination reason, attempts), most first; reasons that never fired left out
    examples: list[EvolAttempt]  # the first attempts of each kind: eliminated per reason, then survivors

    round_column: str = EVOL.round


def _attempts(cat: Catalog, where: str, params: list, limit: int, max_chars: int) -> list[EvolAttempt]:
    e, q = EVOL, quote_ident
    names = cat.column_names(e.attempts_view)

    def text(column: str) -> str:
        return f"left(CAST({q(column)} AS VARCHAR), ?)" if column in names else "NULL"

    texts = (e.parent_instruction, e.instruction, e.response)
    detail = q(e.reason_detail) if e.reason_detail in names else "NULL"
    order = q(e.attempt_id) if e.attempt_id in names else q(e.round)
    rows = cat.rows(
        f"SELECT {q(e.round)}, {q(e.operation)}, {q(e.survived)}, {q(e.reason)}, {detail}, "
        f"{', '.join(text(c) for c in texts)} FROM {q(e.attempts_view)} WHERE {where} "
        f"ORDER BY {q(e.round)}, {order} LIMIT ?",
        [max_chars for c in texts if c in names] + params + [limit])
    return [EvolAttempt(int(r), str(op), bool(s), why, det, parent or "", child or "", resp)
            for r, op, s, why, det, parent, child, resp in rows]


def evol_survival(cat: Catalog, view: str | None = None, *, examples_per_kind: int = 1,
                  max_chars: int = 600) -> EvolSurvival:
    e, q = EVOL, quote_ident
    if not evol_applies(cat) or view not in (None, e.attempts_view):
        raise NotFound(f"{view or 'this run'!r} has no Evol-Instruct attempts")
    survival = q(e.survival_view)
    per_round = [(str(r), int(n), int(k)) for r, n, k in cat.rows(
        f"SELECT {q(e.round)}, sum({q(e.attempts)}), sum({q(e.survivors)}) FROM {survival} GROUP BY 1 ORDER BY 1")]
    per_operation = [(str(o), int(n), int(k)) for o, n, k in cat.rows(
        f"SELECT {q(e.operation)}, sum({q(e.attempts)}), sum({q(e.survivors)}) FROM {survival} "
        "GROUP BY 1 ORDER BY 2 DESC, 1")]
    reason_columns = [r for r in e.reasons if r in cat.column_names(e.survival_view)]
    reasons: list[tuple[str, int]] = []
    if reason_columns:
        totals = cat.rows(f"SELECT {', '.join(f'sum({q(r)})' for r in reason_columns)} FROM {survival}")[0]
        reasons = sorted(((r, int(n or 0)) for r, n in zip(reason_columns, totals) if n),
                         key=lambda item: (-item[1], item[0]))
    examples = []
    for reason, _ in reasons:
        examples += _attempts(cat, f"{q(e.reason)} = ?", [reason], examples_per_kind, max_chars)
    examples += _attempts(cat, f"{q(e.survived)}", [], examples_per_kind, max_chars)
    return EvolSurvival(e.attempts_view, sum(n for _, n, _ in per_round), sum(k for _, _, k in per_round),
                        per_round, per_operation, reasons, examples)
