"""Stage statistics as Prefect artifacts (and as plain rows for the CLI to print)."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")[:100]


def ingest_summary(stats: list[dict]) -> dict:
    reasons: dict[str, int] = {}
    for shard in stats:
        for reason, n in shard["quarantine_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {
        "shards": len(stats),
        "shards_skipped": sum(s["skipped"] for s in stats),
        "rows_in": sum(s["rows_in"] for s in stats),
        "rows_written": sum(s["rows_written"] for s in stats),
        "rows_quarantined": sum(s["rows_quarantined"] for s in stats),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "seconds": round(sum(s["seconds"] for s in stats), 3),
    }


def publish_ingest(run_name: str, stats: list[dict], summary: dict) -> None:
    rows = [
        {k: s[k] for k in ("shard_id", "format", "table", "rows_in", "rows_written", "rows_quarantined",
                           "seconds", "skipped")}
        | {"quarantine_reasons": ", ".join(f"{r}={n}" for r, n in s["quarantine_reasons"].items()) or "-"}
        for s in stats
    ]
    create_table_artifact(rows, key=artifact_key(run_name, "ingest-shards"),
                          description=f"Ingest of {run_name}: one row per shard")
    reasons = "\n".join(f"| {r} | {n:,} |" for r, n in summary["quarantine_reasons"].items()) or "| (none) | 0 |"
    create_markdown_artifact(
        f"# Ingest of `{run_name}`\n\n"
        f"| shards | rows in | written | quarantined | seconds |\n|---|---|---|---|---|\n"
        f"| {summary['shards']} | {summary['rows_in']:,} | {summary['rows_written']:,} | "
        f"{summary['rows_quarantined']:,} | {summary['seconds']} |\n\n"
        f"## Quarantine reasons\n\n| reason | rows |\n|---|---|\n{reasons}\n",
        key=artifact_key(run_name, "ingest-summary"),
        description="rows in = rows written + rows quarantined",
    )


def score_summary(stats: list[dict]) -> list[dict]:
    by_scorer: dict[str, dict] = {}
    for s in stats:
        entry = by_scorer.setdefault(s["scorer"], {"scorer": s["scorer"], "shards": 0, "shards_skipped": 0,
                                                   "rows": 0, "seconds": 0.0})
        entry["shards"] += 1
        entry["shards_skipped"] += s["skipped"]
        entry["rows"] += s["rows"]
        entry["seconds"] = round(entry["seconds"] + s["seconds"], 3)
    for entry in by_scorer.values():
        scored = entry["rows"] if entry["seconds"] else 0
        entry["rows_per_second"] = round(scored / entry["seconds"], 1) if entry["seconds"] else None
    return [by_scorer[k] for k in sorted(by_scorer)]


def publish_score(run_name: str, summary: list[dict]) -> None:
    create_table_artifact(summary, key=artifact_key(run_name, "score-summary"),
                          description=f"Scorers run over {run_name}: rows and time per scorer")
