"""Read-only panel data for the dashboard and the static report, in one namespace.

Every function takes a `Catalog` (a read-only connection to a run's `catalog.duckdb` plus what it
knows about the views) and returns small dataclasses: counts, histogram bins, one page of
documents. Nothing writes, and nothing renders. The code lives in one module per concern:

    catalog      the connection, views, columns, errors, SQL helpers
    summary      run manifest, stages, the funnel
    histograms   score views, histograms, quantile bands
    samples      the sample viewer's documents, quarantine records
    dedup        duplicate clusters (the dedup stage's and SemDeDup's declared tables)
    selections   selections, DSIR fit / weights / baselines / report
    judges       judge sidecars by their declared columns, calibrations against reference labels
    evol         Evol-Instruct survival from the augment stage's declared views

Stage-specific names (views, columns, by role) come from the stages' declarations:
thresher.judges.views, thresher.augment.views, thresher.dedup.views, thresher.embeddings.views,
thresher.dsir.views.
"""

from __future__ import annotations

from thresher.dashboards.catalog import (
    MAX_PER_PAGE,
    MAX_TEXT_CHARS,
    Catalog,
    CatalogUnavailable,
    Column,
    InvalidParameter,
    NotFound,
    check_page,
    quote_ident,
    read_catalog,
    value_expr,
)
from thresher.dashboards.dedup import (
    ClusterMember,
    ClusterPage,
    ClusterRow,
    DedupSource,
    DedupSummary,
    cluster_members,
    dedup_clusters,
    dedup_source,
    dedup_sources,
    dedup_summary,
    other_dedup_tables,
)
from thresher.dashboards.evol import EvolAttempt, EvolSurvival, evol_applies, evol_survival, evol_views
from thresher.dashboards.histograms import (
    Band,
    Histogram,
    histogram,
    histograms,
    numeric_columns,
    score_bands,
    score_columns,
    score_views,
    view_tables,
)
from thresher.dashboards.judges import (
    Calibration,
    JudgeCalibration,
    JudgeSidecar,
    JudgeView,
    UnparsedRow,
    calibrations,
    judge_declarations,
    judge_sidecar,
    judge_sidecars,
    judge_view,
    judge_views,
)
from thresher.dashboards.samples import (
    SAMPLE_ORDERS,
    QuarantinePage,
    QuarantineRow,
    Sample,
    SamplePage,
    fetch_texts,
    quarantine_page,
    samples,
)
from thresher.dashboards.selections import (
    DistributionComparison,
    FitDistribution,
    SelectionInfo,
    compare_distribution,
    dsir_columns,
    dsir_comparisons,
    dsir_fit_distributions,
    dsir_selection_report,
    dsir_weights_view,
    other_dsir_tables,
    selection,
    selections,
)
from thresher.dashboards.summary import (
    Funnel,
    FunnelStep,
    RunSummary,
    StageInfo,
    funnel,
    funnels,
    run_manifest,
    run_name,
    run_summary,
)

__all__ = [
    "MAX_PER_PAGE", "MAX_TEXT_CHARS", "SAMPLE_ORDERS", "Band", "Calibration", "Catalog", "CatalogUnavailable",
    "ClusterMember", "ClusterPage", "ClusterRow", "Column", "DedupSource", "DedupSummary", "DistributionComparison",
    "EvolAttempt", "EvolSurvival", "FitDistribution", "Funnel", "FunnelStep", "Histogram", "InvalidParameter",
    "JudgeCalibration", "JudgeSidecar", "JudgeView", "NotFound", "QuarantinePage", "QuarantineRow", "RunSummary",
    "Sample", "SamplePage", "SelectionInfo", "StageInfo", "UnparsedRow", "calibrations",
    "check_page", "cluster_members", "compare_distribution", "dedup_clusters", "dedup_source", "dedup_sources",
    "dedup_summary", "dsir_columns", "dsir_comparisons", "dsir_fit_distributions", "dsir_selection_report",
    "dsir_weights_view", "evol_applies", "evol_survival", "evol_views", "fetch_texts", "funnel", "funnels", "histogram",
    "histograms", "judge_declarations", "judge_sidecar", "judge_sidecars", "judge_view", "judge_views",
    "numeric_columns", "other_dedup_tables", "other_dsir_tables", "quarantine_page", "quote_ident", "read_catalog",
    "run_manifest", "run_name", "run_summary", "samples", "score_bands", "score_columns", "score_views",
    "selection", "selections", "value_expr", "view_tables",
]
