"""Documents for the sample viewer (one page of a score band, with text) and the quarantine's records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from thresher.dashboards.catalog import (
    MAX_TEXT_CHARS,
    Catalog,
    InvalidParameter,
    NotFound,
    check_page,
    quote_ident,
    value_expr,
)


@dataclass(frozen=True)
class Sample:
    doc_id: str
    value: float | None
    table: str | None
    source: str | None
    url: str | None
    text: str
    text_chars: int

    @property
    def truncated(self) -> bool:
        return self.text_chars > len(self.text)


@dataclass(frozen=True)
class SamplePage:
    view: str
    column: str
    lo: float | None
    hi: float | None
    order: str
    page: int
    per_page: int
    total: int
    samples: list[Sample]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


SAMPLE_ORDERS = ("random", "asc", "desc")


def fetch_texts(cat: Catalog, doc_ids: Sequence[str], max_chars: int) -> dict[str, tuple]:
    """{doc_id: (table, source, url, text prefix, text length)} for documents and instructions."""
    if not doc_ids:
        return {}
    selects, params = [], []
    for table in cat.data_tables():
        names = cat.column_names(table)
        url = "CAST(url AS VARCHAR)" if "url" in names else "NULL"
        source = "CAST(source AS VARCHAR)" if "source" in names else "NULL"
        selects.append(f"SELECT CAST(doc_id AS VARCHAR), ? AS tbl, {source}, {url}, left(text, ?), length(text) "
                       f"FROM {quote_ident(table)} WHERE CAST(doc_id AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))")
        params += [table, max_chars, list(doc_ids)]
    if not selects:
        return {}
    return {str(r[0]): tuple(r[1:]) for r in cat.rows(" UNION ALL ".join(selects), params)}


def samples(cat: Catalog, view: str, column: str, lo: float | None = None, hi: float | None = None, *,
            page: int = 1, per_page: int = 10, order: str = "random", seed: int = 0,
            max_chars: int = 4000) -> SamplePage:
    """One page of documents whose `column` in `view` lies in [lo, hi], with their text."""
    check_page(page, per_page)
    if order not in SAMPLE_ORDERS:
        raise InvalidParameter(f"order must be one of {', '.join(SAMPLE_ORDERS)}")
    if not 1 <= max_chars <= MAX_TEXT_CHARS:
        raise InvalidParameter(f"max_chars must be between 1 and {MAX_TEXT_CHARS}")
    if "doc_id" not in cat.column_names(view):
        raise NotFound(f"view {view!r} has no doc_id column")
    col = cat.column(view, column)
    if not col.is_numeric:
        raise NotFound(f"column {column!r} of {view!r} is not numeric")
    for name, value in (("lo", lo), ("hi", hi)):
        if value is not None and not math.isfinite(value):
            raise InvalidParameter(f"{name} must be a finite number")
    e = value_expr(col)
    where, params = [f"{e} IS NOT NULL"], []
    if lo is not None:
        where.append(f"{e} >= ?")
        params.append(lo)
    if hi is not None:
        where.append(f"{e} <= ?")
        params.append(hi)
    condition = " AND ".join(where)
    total = int(cat.scalar(f"SELECT count(*) FROM {quote_ident(view)} WHERE {condition}", params))
    ordering = {"asc": "v ASC, doc_id", "desc": "v DESC, doc_id", "random": "hash(doc_id, ?), doc_id"}[order]
    page_params = params + ([seed] if order == "random" else []) + [per_page, (page - 1) * per_page]
    picked = cat.rows(
        f"SELECT CAST(doc_id AS VARCHAR) AS doc_id, {e} AS v FROM {quote_ident(view)} WHERE {condition} "
        f"ORDER BY {ordering} LIMIT ? OFFSET ?", page_params)
    texts = fetch_texts(cat, [r[0] for r in picked], max_chars)
    result = []
    for doc_id, value in picked:
        table, source, url, text, n_chars = texts.get(doc_id, (None, None, None, "", 0))
        result.append(Sample(doc_id, value, table, source, url, text or "", int(n_chars or 0)))
    return SamplePage(view, column, lo, hi, order, page, per_page, total, result)


# -- quarantine -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineRow:
    source: str | None
    source_row: int | None
    byte_offset: int | None
    reason: str | None
    detail: str | None
    n_rows: int | None
    raw_bytes: int | None
    raw_preview: str


@dataclass(frozen=True)
class QuarantinePage:
    reason: str | None
    page: int
    per_page: int
    total: int
    reasons: dict[str, int]  # rows per reason (n_rows summed), whole run
    rows: list[QuarantineRow]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def quarantine_page(cat: Catalog, reason: str | None = None, *, page: int = 1, per_page: int = 25,
                    preview_bytes: int = 300) -> QuarantinePage:
    check_page(page, per_page)
    if not cat.has("quarantine"):
        return QuarantinePage(reason, page, per_page, 0, {}, [])
    reasons = {str(r): int(n) for r, n in cat.rows(
        "SELECT reason, sum(coalesce(n_rows, 1)) AS n FROM quarantine GROUP BY reason ORDER BY n DESC, reason")}
    where, params = ("WHERE reason = ?", [reason]) if reason else ("", [])
    total = int(cat.scalar(f"SELECT count(*) FROM quarantine {where}", params))
    names = cat.column_names("quarantine")

    def col(name: str) -> str:
        return quote_ident(name) if name in names else "NULL"

    raw = "raw[1:?]" if "raw" in names else "NULL"
    raw_len = "octet_length(raw)" if "raw" in names else "NULL"
    raw_params = [preview_bytes] if "raw" in names else []
    rows = cat.rows(
        f"SELECT {col('source')}, {col('source_row')}, {col('byte_offset')}, {col('reason')}, {col('detail')}, "
        f"{col('n_rows')}, {raw_len}, {raw} FROM quarantine {where} "
        f"ORDER BY {col('source')}, {col('source_row')}, {col('byte_offset')} LIMIT ? OFFSET ?",
        raw_params + params + [per_page, (page - 1) * per_page])
    out = []
    for source, source_row, offset, why, detail, n_rows, raw_len_value, raw_value in rows:
        preview = raw_value.decode("utf-8", errors="replace") if isinstance(raw_value, bytes | bytearray) else (
            "" if raw_value is None else str(raw_value))
        out.append(QuarantineRow(None if source is None else Path(str(source)).name, source_row, offset, why,
                                 detail, n_rows, raw_len_value, preview))
    return QuarantinePage(reason, page, per_page, total, reasons, out)
