"""A judge's score distribution over a run, for the judge stage's summary: one bucket per half point
of a judge's fixed scale, 0.2-wide buckets below 1 for an open-ended score (IFD), nulls apart, and
rows outside a judge's sample left out (they were not judged)."""

from __future__ import annotations

import duckdb

from thresher.judges.views import JudgeColumns
from thresher.scorers.base import Scorer, scorer_key
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import quote_ident


def judge_columns(judge: Scorer) -> JudgeColumns:
    """The declaration of the sidecar `judge` writes (its name says the mode: `_gen` is generate)."""
    return next(c for c in type(judge).dashboard_columns() if c.name == judge.name)


def score_histogram(run: RunDir, judge: Scorer) -> list[tuple[str, int]]:
    """(bucket, rows) of the judge's score over the whole run."""
    parts = sorted(str(p) for p in (run.root / "scores" / scorer_key(judge)).glob("part-*.parquet"))
    if not parts:
        return []
    columns = judge_columns(judge)
    score = quote_ident(columns.score)
    if judge.score_range is None:
        bucket = (f"CASE WHEN {score} IS NULL THEN 'null' WHEN {score} >= 1 THEN '>= 1' "
                  f"ELSE printf('%.1f-%.1f', floor({score} * 5) / 5, floor({score} * 5) / 5 + 0.2) END")
    else:
        bucket = f"CASE WHEN {score} IS NULL THEN 'null' ELSE printf('%.1f', floor({score} * 2) / 2) END"
    where, params = "", {"parts": parts}
    if columns.parse_error:
        where, params["not_sampled"] = f"WHERE {quote_ident(columns.parse_error)} IS DISTINCT FROM $not_sampled", str(
            columns.not_sampled)
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT {bucket} AS b, count(*) FROM read_parquet($parts) {where} GROUP BY b ORDER BY b",
                           params).fetchall()
    return [(b, int(n)) for b, n in rows]


def histogram_markdown(name: str, histogram: list[tuple[str, int]]) -> str:
    total = sum(n for _, n in histogram) or 1
    lines = [f"## `{name}`", "", "| score | rows | |", "|---|---|---|"]
    for bucket, n in histogram:
        lines.append(f"| {bucket} | {n:,} | {'█' * max(1, round(40 * n / total)) if n else ''} |")
    return "\n".join(lines)
