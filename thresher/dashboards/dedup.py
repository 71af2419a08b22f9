"""Duplicate clusters: the dedup stage's and SemDeDup's cluster tables, as the stages declare them
(`thresher.dedup.views.CLUSTER_TABLES`, `thresher.embeddings.views.SEMDEDUP_TABLES`).

Every declared table the run has is read through one normalised query, `DedupSource.sql`:
(doc_id, prior_run, cluster_id, cluster_size, survivor_id, is_duplicate). Rows with a prior_run
belong to an earlier run deduplicated against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thresher.dashboards.catalog import Catalog, InvalidParameter, NotFound, check_page, quote_ident
from thresher.dashboards.samples import fetch_texts
from thresher.dedup.views import CLUSTER_TABLES, TABLE_PREFIX, ClusterColumns
from thresher.embeddings.views import SEMDEDUP_TABLES

DECLARED: tuple[ClusterColumns, ...] = (*CLUSTER_TABLES, *SEMDEDUP_TABLES)
OTHER_TABLE_PREFIXES = (TABLE_PREFIX, "semdedup_")  # the stages' other tables, listed by name


@dataclass(frozen=True)
class DedupSource:
    """A declared cluster table present in this run, normalised by `sql` (see the module doc)."""

    view: str
    key_column: str
    sql: str
    is_sidecar: bool  # one row per document of the run (the funnel counts these)
    method: str


def _source(declared: ClusterColumns) -> DedupSource:
    def col(name: str) -> str:
        return quote_ident(name)

    prior = f"CAST({col(declared.prior_run)} AS VARCHAR)" if declared.prior_run else "NULL::VARCHAR"
    sql = (f"SELECT CAST(doc_id AS VARCHAR) AS doc_id, {prior} AS prior_run, "
           f"CAST({col(declared.cluster)} AS VARCHAR) AS cluster_id, "
           f"CAST({col(declared.size)} AS BIGINT) AS cluster_size, "
           f"CAST({col(declared.survivor)} AS VARCHAR) AS survivor_id, "
           f"coalesce(CAST({col(declared.is_duplicate)} AS BOOLEAN), false) AS is_duplicate "
           f"FROM {quote_ident(declared.view)}")
    return DedupSource(declared.view, declared.cluster, sql, declared.sidecar, declared.method)


def dedup_sources(cat: Catalog) -> list[DedupSource]:
    """Every declared cluster table the run has: sidecars first, then the stages' cluster tables."""
    present = [d for d in DECLARED if cat.has_columns(d.view, "doc_id", d.cluster, d.size, d.survivor,
                                                      d.is_duplicate, d.prior_run)]
    return [_source(d) for d in sorted(present, key=lambda d: (not d.sidecar, d.view))]


def dedup_source(cat: Catalog, view: str | None) -> DedupSource:
    sources = dedup_sources(cat)
    if not sources:
        raise NotFound("this run has no duplicate clusters")
    if view is None:  # near duplicates are the interesting ones to browse
        return next((s for s in sources if s.view == CLUSTER_TABLES[1].view), sources[0])
    for source in sources:
        if source.view == view:
            return source
    raise NotFound(f"{view!r} is not a dedup view of this run")


def other_dedup_tables(cat: Catalog) -> list[str]:
    """The stages' tables that are not cluster tables (signatures, band keys, edges, centroids)."""
    shown = {s.view for s in dedup_sources(cat)}
    return [v for v in cat.unique_views() if v.startswith(OTHER_TABLE_PREFIXES) and v not in shown]


@dataclass(frozen=True)
class DedupSummary:
    view: str
    documents: int  # this run's documents in the view
    clusters: int  # clusters with more than one member
    clustered_documents: int
    duplicates: int  # this run's documents flagged as duplicates
    prior_run_documents: int
    largest: int
    size_counts: list[tuple[int, int]]  # (cluster size, number of clusters), sizes > 1


def dedup_summary(cat: Catalog, source: DedupSource) -> DedupSummary:
    documents, clusters, clustered, duplicates, prior, largest = cat.rows(
        f"SELECT count(*) FILTER (WHERE prior_run IS NULL), "
        f"count(DISTINCT cluster_id) FILTER (WHERE cluster_size > 1), "
        f"count(*) FILTER (WHERE cluster_size > 1 AND prior_run IS NULL), "
        f"count(*) FILTER (WHERE is_duplicate AND prior_run IS NULL), count(*) FILTER (WHERE prior_run IS NOT NULL), "
        f"coalesce(max(cluster_size), 0) FROM ({source.sql})")[0]
    sizes = cat.rows(
        f"SELECT size, count(*) FROM (SELECT cluster_id, max(cluster_size) AS size FROM ({source.sql}) "
        f"WHERE cluster_size > 1 GROUP BY cluster_id) GROUP BY size ORDER BY size")
    return DedupSummary(source.view, int(documents), int(clusters or 0), int(clustered or 0),
                        int(duplicates or 0), int(prior or 0), int(largest or 0), [(int(s), int(n)) for s, n in sizes])


@dataclass(frozen=True)
class ClusterRow:
    cluster_id: str
    size: int
    survivor_id: str | None
    duplicates: int
    preview: str


@dataclass(frozen=True)
class ClusterPage:
    view: str
    page: int
    per_page: int
    total: int
    clusters: list[ClusterRow]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def dedup_clusters(cat: Catalog, source: DedupSource, *, page: int = 1, per_page: int = 20,
                   preview_chars: int = 160) -> ClusterPage:
    """Clusters with more than one member, largest first."""
    check_page(page, per_page)
    total = int(cat.scalar(
        f"SELECT count(DISTINCT cluster_id) FROM ({source.sql}) WHERE cluster_size > 1") or 0)
    rows = cat.rows(
        f"SELECT cluster_id, max(cluster_size) AS size, min(survivor_id), count(*) FILTER (WHERE is_duplicate) "
        f"FROM ({source.sql}) WHERE cluster_size > 1 GROUP BY cluster_id "
        f"ORDER BY size DESC, cluster_id LIMIT ? OFFSET ?", [per_page, (page - 1) * per_page])
    texts = fetch_texts(cat, [r[2] for r in rows if r[2] is not None], preview_chars)
    clusters = [ClusterRow(str(cid), int(size), survivor, int(dups),
                           (texts.get(survivor) or (None, None, None, "", 0))[3] or "")
                for cid, size, survivor, dups in rows]
    return ClusterPage(source.view, page, per_page, total, clusters)


@dataclass(frozen=True)
class ClusterMember:
    doc_id: str
    prior_run: str | None
    is_survivor: bool
    is_duplicate: bool
    table: str | None
    source: str | None
    url: str | None
    text: str
    text_chars: int


def cluster_members(cat: Catalog, source: DedupSource, cluster_id: str, *, limit: int = 50,
                    max_chars: int = 2000) -> list[ClusterMember]:
    """The members of one cluster, survivor first (texts of prior runs' documents are not shown)."""
    if not 1 <= limit <= 500:
        raise InvalidParameter("limit must be between 1 and 500")
    rows = cat.rows(
        f"SELECT doc_id, prior_run, doc_id = survivor_id, is_duplicate FROM ({source.sql}) WHERE cluster_id = ? "
        f"ORDER BY doc_id = survivor_id DESC, is_duplicate, doc_id LIMIT ?", [cluster_id, limit])
    if not rows:
        raise NotFound(f"no cluster {cluster_id!r} in {source.view!r}")
    texts = fetch_texts(cat, [r[0] for r in rows if r[1] is None], max_chars)
    members = []
    for doc_id, prior_run, survivor, duplicate in rows:
        table, src, url, text, n = texts.get(doc_id, (None, None, None, "", 0)) if prior_run is None else (
            None, None, None, "", 0)
        members.append(ClusterMember(doc_id, prior_run, bool(survivor), bool(duplicate), table, src, url,
                                     text or "", int(n or 0)))
    return members

