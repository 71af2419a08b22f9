"""Perplexity selection vocabulary as catalog views, computed on the run's own data.

Registered in `thresher.storage.catalog.DERIVED_VIEW_PROVIDERS` as
`"thresher.perplexity.bands:catalog_views"`; `build_catalog` calls it after every score
view exists. For each perplexity score view present (`score_<scorer>` of every registered scorer
that declares a `perplexity_column`: `score_kenlm` → `kenlm_perplexity`, `score_lm_perplexity` →
`lm_perplexity`) it adds:

- `perplexity_bands_<scorer>`: one row per scored document,
  `doc_id`, the raw perplexity, `<p>_band` and `<p>_pp_percentile` (p = `kenlm` or `lm`):
  - `<p>_band`: CCNet's buckets, `head` (perplexity < P30), `middle` (P30 ≤ perplexity < P60),
    `tail` (≥ P60), with P30 and P60 the 30th and 60th percentiles (linear interpolation,
    `quantile_cont`) of this run's perplexities, not CCNet's fixed English cut-offs (340/520),
    which hold only for CCNet's own models;
  - `<p>_pp_percentile`: the document's rank by perplexity (ties broken by doc_id) as a fraction
    in [0, 1): (rank - 1) / scored, so these predicates select exactly ⌊X·n⌋-ish documents:
    keep-low X:    `<p>_pp_percentile < X`
    keep-high X:   `<p>_pp_percentile >= 1 - X`
    keep-middle X: `<p>_pp_percentile >= (1 - X) / 2 AND <p>_pp_percentile < (1 + X) / 2`
    (Marion et al. 2023, "When Less is More", select by perplexity percentile this way.)
  Documents whose perplexity is null (null or blank text) have null band and percentile.
- `perplexity_cutoffs`: one row per scorer present, with the number of scored documents and the
  P10, P30, P50, P60 and P90 perplexities, min and max.

Join a band view to `documents_scored` with `USING (doc_id)`. Views are plain SQL over the score
views, so they follow new scores whenever the catalog is rebuilt (and cost one sort per query).
"""

from __future__ import annotations

from typing import Any

from thresher.scorers.registry import available_scorers, scorer_class
from thresher.storage.sql import quote_ident

HEAD_PERCENTILE = 0.30
TAIL_PERCENTILE = 0.60
CUTOFFS_VIEW = "perplexity_cutoffs"


def perplexity_scores() -> dict[str, tuple[str, str, str]]:
    """score view -> (perplexity column, column prefix, band view), for every registered scorer that
    declares a `perplexity_column` (the prefix is that column without `_perplexity`)."""
    scores = {}
    for name in available_scorers():
        column = scorer_class(name).perplexity_column
        if column is not None:
            scores[f"score_{name}"] = (column, column.removesuffix("_perplexity"), f"perplexity_bands_{name}")
    return scores


def _columns(con: Any, view: str) -> set[str]:
    return {row[0] for row in con.execute(f"SELECT column_name FROM (DESCRIBE {quote_ident(view)})").fetchall()}


def band_view_sql(score_view: str, column: str, prefix: str) -> str:
    s, c = quote_ident(score_view), quote_ident(column)
    return f"""
        WITH cut AS (
            SELECT quantile_cont({c}, {HEAD_PERCENTILE}) AS p_head,
                   quantile_cont({c}, {TAIL_PERCENTILE}) AS p_tail,
                   count({c}) AS scored
            FROM {s}
        )
        SELECT s.doc_id,
               s.{c},
               CASE WHEN s.{c} IS NULL THEN NULL
                    WHEN s.{c} < cut.p_head THEN 'head'
                    WHEN s.{c} < cut.p_tail THEN 'middle'
                    ELSE 'tail' END AS {quote_ident(prefix + "_band")},
               CASE WHEN s.{c} IS NULL THEN NULL
                    ELSE (row_number() OVER (ORDER BY s.{c} ASC NULLS LAST, s.doc_id) - 1)::DOUBLE / cut.scored
                    END AS {quote_ident(prefix + "_pp_percentile")}
        FROM {s} AS s CROSS JOIN cut
    """


def cutoffs_row_sql(score_view: str, column: str, scorer: str) -> str:
    c = quote_ident(column)
    quantiles = ", ".join(f"quantile_cont({c}, {q}) AS p{round(q * 100)}" for q in (0.1, 0.3, 0.5, 0.6, 0.9))
    return (f"SELECT '{scorer}' AS scorer, '{column}' AS column_name, count({c}) AS scored, {quantiles}, "
            f"min({c}) AS min, max({c}) AS max FROM {quote_ident(score_view)}")


def catalog_views(con: Any, existing_view_names: set[str] | list[str]) -> list[tuple[str, str, str]]:
    """(name, sql, description) of the band views for the perplexity score views that exist."""
    existing = set(existing_view_names)
    views: list[tuple[str, str, str]] = []
    cutoff_rows: list[str] = []
    for score_view, (column, prefix, band_view) in perplexity_scores().items():
        if score_view not in existing or column not in _columns(con, score_view):
            continue
        scorer = score_view.removeprefix("score_")
        cutoff_rows.append(cutoffs_row_sql(score_view, column, scorer))
        if band_view in existing:
            continue
        views.append((
            band_view,
            band_view_sql(score_view, column, prefix),
            f"{column} per document with {prefix}_band (CCNet head < P30 <= middle < P60 <= tail, "
            f"percentiles of this run) and {prefix}_pp_percentile in [0, 1) for keep-low/middle/high X: "
            f"{prefix}_pp_percentile < X | >= 1 - X | between (1 - X) / 2 and (1 + X) / 2",
        ))
    if cutoff_rows and CUTOFFS_VIEW not in existing:
        views.append((
            CUTOFFS_VIEW,
            " UNION ALL ".join(cutoff_rows),
            "perplexity percentiles (P10/P30/P50/P60/P90), min and max of each perplexity scorer over this run",
        ))
    return views
