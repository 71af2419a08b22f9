"""Documents and instructions apart: per-table funnels and histograms in the report and the app,
every share computed within one table (checked against SQL on the real demo run)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from thresher.dashboards import data as d
from thresher.dashboards.app import create_app
from thresher.dashboards.report import render_report


@pytest.fixture()
def demo(demo_run):
    # Per test, not per module: the app's requests take the same run's catalog lock.
    with d.read_catalog(demo_run) as cat:
        yield cat


@pytest.fixture(scope="module")
def demo_html(demo_run) -> str:
    return render_report(demo_run)


def _funnel_table(html: str, table: str) -> list[tuple[str, int, float]]:
    """(step, rows, percent) parsed from the report's funnel table of `table`."""
    start = html.index(f'<table class="funnel funnel-{table}">')
    body = html[start:html.index("</table>", start)]
    rows = []
    for cells in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL):
        values = re.findall(r"<td[^>]*>(.*?)</td>", cells, re.DOTALL)
        if values:
            rows.append((values[0], int(values[1].replace(",", "")), float(values[2].rstrip("%"))))
    return rows


def test_report_has_one_funnel_per_table_with_shares_within_it(demo, demo_html):
    for table in ("documents", "instructions"):
        rows = _funnel_table(demo_html, table)
        steps = dict((step, n) for step, n, _pct in rows)
        rows_in, written = demo.rows('SELECT sum(rows_in), sum(rows_written) FROM ingest_stats WHERE "table" = ?',
                                     [table])[0]
        assert steps["rows in"] == rows_in and steps["written"] == written == demo.count(table)
        for step, n, pct in rows:
            assert pct == pytest.approx(100 * n / rows_in, abs=0.05), (table, step)
        selected = {step.removeprefix("selection "): n for step, n in steps.items() if step.startswith("selection ")}
        for sel in d.selections(demo):
            in_table = demo.scalar(f"SELECT count(*) FROM {sel.view} WHERE doc_id IN (SELECT doc_id FROM {table})")
            assert selected.get(sel.name, 0) == in_table, (table, sel.name)
    # The demo's web selections hold documents only and its instruction selections instructions only.
    documents, instructions = (dict((s, n) for s, n, _ in _funnel_table(demo_html, t))
                               for t in ("documents", "instructions"))
    assert not {s for s in documents if s.startswith("selection ")} & {s for s in instructions
                                                                       if s.startswith("selection ")}
    assert "Stage funnel of documents:" in demo_html and "Stage funnel of instructions:" in demo_html


def test_report_histograms_are_per_table(demo, demo_html):
    for view in d.score_views(demo):
        tables = d.view_tables(demo, view)
        assert tables, view
        for table in ("documents", "instructions"):
            assert (f'id="scores-{view}-{table}"' in demo_html) == (table in tables), (view, table)
    assert set(d.view_tables(demo, "score_judge_alpagasus")) == {"instructions"}
    assert set(d.view_tables(demo, "score_heuristics")) == {"documents", "instructions"}


def test_table_histograms_partition_the_view(demo):
    both = d.histogram(demo, "score_heuristics", "text_n_chars", bins=20)
    parts = [d.histogram(demo, "score_heuristics", "text_n_chars", bins=20, table=t)
             for t in ("documents", "instructions")]
    assert [p.rows for p in parts] == [demo.count("documents"), demo.count("instructions")]
    assert sum(p.values for p in parts) == both.values
    for part in parts:
        assert sum(part.counts) + part.below + part.above == part.values


def test_app_serves_per_table_series(demo_run):
    with d.read_catalog(demo_run) as cat:
        counts = {t: cat.count(t) for t in ("documents", "instructions")}
    client = TestClient(create_app(demo_run))
    funnels = client.get("/api/funnels").json()
    assert set(funnels) == {"documents", "instructions"}
    for table, funnel in funnels.items():
        first = funnel["steps"][0]
        assert funnel["table"] == table and first["label"] == "rows in" and first["share"] == 1.0
        for step in funnel["steps"]:
            assert step["share"] == pytest.approx(step["rows"] / first["rows"])
    assert client.get("/api/overview").json()["funnels"] == funnels

    split = client.get("/api/histogram", params={"view": "score_heuristics", "column": "text_n_chars"}).json()
    assert set(split["tables"]) == {"documents", "instructions"}
    for table, hist in split["tables"].items():
        assert hist["table"] == table and hist["rows"] == counts[table]
    one = client.get("/api/histogram", params={"view": "score_heuristics", "column": "text_n_chars",
                                               "table": "instructions"}).json()
    assert one == split["tables"]["instructions"]
    judge = client.get("/api/histogram", params={"view": "score_judge_alpagasus",
                                                 "column": "judge_alpagasus_score"}).json()
    assert list(judge["tables"]) == ["instructions"]
    assert client.get("/api/histogram", params={"view": "score_heuristics", "column": "text_n_chars",
                                                "table": "nope"}).status_code == 404

    page = client.get("/scores", params={"view": "score_heuristics", "column": "text_n_chars",
                                         "table": "instructions"}).text
    assert '<option value="instructions" selected>' in page and "score_heuristics.text_n_chars (instructions)" in page
