"""The Evol-Instruct panel on the demo's real augmented run (`<demo>/augment/evol/`): survival per
round and operation and eliminations by reason, against the stage's own views, its attempts table
and the per-round statistics it wrote."""

from __future__ import annotations

import pytest

from thresher.augment.report import read_round_stats, survival_by_operation
from thresher.dashboards import data as d
from thresher.dashboards import panels
from thresher.demo import DEMO_AUGMENT


@pytest.fixture(scope="module")
def evol(evol_run):
    with d.read_catalog(evol_run) as cat:
        yield cat


def test_the_evol_panel_applies_to_the_augmented_run(evol):
    assert d.evol_applies(evol) and d.evol_views(evol) == ["augment_attempts"]
    assert "evol" in {p.key for p in panels.PANELS if p.applies(evol)}


def test_survival_per_operation_is_augment_survival(evol, evol_run):
    e = d.evol_survival(evol)
    survival = {op: (int(n), int(k)) for op, n, k in evol.rows(
        "SELECT operation, sum(attempts), sum(survived) FROM augment_survival GROUP BY operation")}
    counted = {op: (int(n), int(k)) for op, n, k in evol.rows(
        "SELECT operation, count(*), count(*) FILTER (WHERE survived) FROM augment_attempts GROUP BY operation")}
    # ... and the stage's own per-round statistics (stats/augment/round-*.json), over all rounds.
    stats = {r["operation"]: (r["attempts"], r["survived"])
             for r in survival_by_operation(read_round_stats(evol_run)) if r["round"] == "all"}
    assert {op: (n, k) for op, n, k in e.per_operation} == survival == counted == stats
    assert e.rows == evol.scalar("SELECT count(*) FROM augment_attempts") == 2 * DEMO_AUGMENT.sample  # 2 rounds
    assert e.survived == evol.scalar("SELECT count(*) FILTER (WHERE survived) FROM augment_attempts")


def test_survival_per_round_and_eliminations_by_reason(evol):
    e = d.evol_survival(evol)
    assert e.per_round == [(str(r), int(n), int(k)) for r, n, k in evol.rows(
        "SELECT round, count(*), count(*) FILTER (WHERE survived) FROM augment_attempts GROUP BY 1 ORDER BY 1")]
    assert [r for r, _, _ in e.per_round] == ["1", "2"]
    reasons = dict(evol.rows("SELECT elimination_reason, count(*) FROM augment_attempts WHERE NOT survived "
                             "GROUP BY 1"))
    assert dict(e.reasons) == reasons and sum(reasons.values()) == e.rows - e.survived
    assert [n for _, n in e.reasons] == sorted((n for _, n in e.reasons), reverse=True)


def test_attempts_to_read_are_real_rows(evol):
    e = d.evol_survival(evol, max_chars=20_000)
    assert len(e.examples) == len(e.reasons) + (1 if e.survived else 0)
    for a in e.examples:
        row = evol.rows("SELECT survived, elimination_reason, parent_instruction FROM augment_attempts "
                        "WHERE evolved_instruction = ? AND round = ? AND operation = ?",
                        [a.instruction, a.round, a.operation])
        assert (a.survived, a.reason, a.parent_instruction) in row
    assert [a.reason for a in e.examples if not a.survived] == [r for r, _ in e.reasons]
