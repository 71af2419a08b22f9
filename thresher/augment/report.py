"""Survival statistics of an augmented run: per round, by operation and by elimination reason;
as rows (CLI, Prefect table artifacts), as Markdown, and as a derived catalog view.

`catalog_views` is a provider for `thresher.storage.catalog.DERIVED_VIEW_PROVIDERS`: over the
`augment_attempts` view it adds `augment_survival` (round x operation: attempts, survivors, rate and
one column per elimination reason).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.augment.eliminate import ELIMINATION_REASONS
from thresher.augment.tables import STAGE, lineage_part, seeds_path
from thresher.augment.views import EVOL
from thresher.storage.run_dir import RunDir


def read_round_stats(run: RunDir) -> list[dict]:
    folder = run.root / "stats" / STAGE
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("round-*.json"))]


def _rate(survived: int, attempts: int) -> float | None:
    return round(survived / attempts, 4) if attempts else None


def survival_by_operation(rounds: list[dict]) -> list[dict]:
    """One row per (round, operation), then one per operation over all rounds (round = "all")."""
    rows, totals = [], {}
    for r in rounds:
        for op, e in r["by_operation"].items():
            rows.append({"round": r["round"], "operation": op, "attempts": e["attempts"], "survived": e["survived"],
                         "survival_rate": _rate(e["survived"], e["attempts"]),
                         **{reason: e[reason] for reason in ELIMINATION_REASONS}})
            t = totals.setdefault(op, {"attempts": 0, "survived": 0, **{reason: 0 for reason in ELIMINATION_REASONS}})
            for k in t:
                t[k] += e[k]
    for op, t in totals.items():
        rows.append({"round": "all", "operation": op, "attempts": t["attempts"], "survived": t["survived"],
                     "survival_rate": _rate(t["survived"], t["attempts"]),
                     **{reason: t[reason] for reason in ELIMINATION_REASONS}})
    return rows


def elimination_by_reason(rounds: list[dict]) -> list[dict]:
    """One row per (round, reason): eliminated attempts and their share of the round's attempts."""
    rows = []
    for r in rounds:
        for reason in ELIMINATION_REASONS:
            n = r["eliminated"][reason]
            rows.append({"round": r["round"], "reason": reason, "eliminated": n, "share_of_attempts":
                         _rate(n, r["attempts"])})
    return rows


def round_rows(rounds: list[dict]) -> list[dict]:
    return [{"round": r["round"], "attempts": r["attempts"], "survived": r["survived"],
             "survival_rate": r["survival_rate"], "batches": r["batches"], "batches_reused": r["batches_reused"],
             "generated": r["attempts_generated"], "seconds": r["seconds"],
             "attempts_per_second": r["attempts_per_second"]} for r in rounds]


def markdown(title: str, summary: dict, rounds: list[dict]) -> str:
    lines = [f"# {title}", "",
             f"{summary['attempts']:,} attempts over {summary['rounds']} round(s), {summary['survived']:,} survived "
             f"({(summary['survival_rate'] or 0):.1%}); {summary['attempts_generated']:,} generated in this run, "
             f"{summary['batches_reused']} batch(es) resumed from checkpoints.", "",
             "## Survival by round and operation", "",
             "| round | operation | attempts | survived | rate | " + " | ".join(ELIMINATION_REASONS) + " |",
             "|---|---|---|---|---|" + "---|" * len(ELIMINATION_REASONS)]
    for row in survival_by_operation(rounds):
        rate = "-" if row["survival_rate"] is None else f"{row['survival_rate']:.0%}"
        lines.append(f"| {row['round']} | {row['operation']} | {row['attempts']} | {row['survived']} | {rate} | "
                     + " | ".join(str(row[r]) for r in ELIMINATION_REASONS) + " |")
    lines += ["", "## Eliminations by reason", "", "| round | reason | eliminated | share of attempts |",
              "|---|---|---|---|"]
    for row in elimination_by_reason(rounds):
        share = "-" if row["share_of_attempts"] is None else f"{row['share_of_attempts']:.0%}"
        lines.append(f"| {row['round']} | {row['reason']} | {row['eliminated']} | {share} |")
    return "\n".join(lines) + "\n"


def lineage_chain(run: RunDir, doc_id: str) -> list[dict]:
    """The chain from the seed to `doc_id` (a surviving evolved pair): seed first."""
    parts = sorted(lineage_part(run, 1).parent.glob("part-*.parquet"))
    if not parts:
        raise ValueError(f"{run.root} has no augment lineage: is it an augmented run?")
    lineage = {r["doc_id"]: r for r in pa.concat_tables([pq.read_table(p) for p in parts]).to_pylist()}
    data = {}
    for part in sorted(run.table_dir("instructions").glob("part-r*.parquet")):
        for r in pq.read_table(part, columns=["doc_id", "instruction"]).to_pylist():
            data[r["doc_id"]] = r["instruction"]
    seeds = {r["root_id"]: r for r in pq.read_table(seeds_path(run)).to_pylist()}
    if doc_id not in lineage:
        raise ValueError(f"{doc_id} is not an evolved pair of {run.root}")
    chain = []
    node = doc_id
    while node in lineage:
        row = lineage[node]
        chain.append({"id": node, "round": row["round"], "operation": row["operation"],
                      "detail": row["operation_detail"], "instruction": data.get(node)})
        node = row["parent_id"]
    seed = seeds.get(node)
    chain.append({"id": node, "round": 0, "operation": "seed", "detail": None,
                  "instruction": seed["instruction"] if seed else None})
    return chain[::-1]


def catalog_views(con, existing: set[str]) -> list[tuple[str, str, str]]:
    """Derived views for thresher.storage.catalog (see the module doc)."""
    if EVOL.attempts_view not in existing:
        return []
    reasons = ", ".join(f"count(*) FILTER (WHERE elimination_reason = '{r}') AS {r}" for r in ELIMINATION_REASONS)
    sql = ("SELECT round, operation, count(*) AS attempts, count(*) FILTER (WHERE survived) AS survived, "
           "round(avg(CASE WHEN survived THEN 1.0 ELSE 0.0 END), 4) AS survival_rate, "
           f"{reasons} FROM {EVOL.attempts_view} GROUP BY round, operation ORDER BY round, operation")
    return [(EVOL.survival_view, sql, "Evol-Instruct attempts, survivors and eliminations by round and operation")]
