"""The static report: one self-contained HTML file with every panel."""

from __future__ import annotations

import re

import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from thresher.dashboards import panels

EXTERNAL = re.compile(r"<(script|link|img|iframe|source|embed)\b[^>]*\b(src|href)\s*=\s*[\"']?\s*(https?:)?//",
                      re.IGNORECASE)


@pytest.fixture(scope="module")
def report_html(staged_report) -> str:
    assert staged_report.is_file() and not list(staged_report.parent.glob(".*.tmp"))
    return staged_report.read_text(encoding="utf-8")


def test_report_is_self_contained(report_html):
    assert not EXTERNAL.search(report_html)
    assert not re.search(r"<script[^>]*\bsrc\s*=", report_html, re.IGNORECASE)  # every script is inline
    assert not re.search(r"<link\b", report_html, re.IGNORECASE)
    banner = get_plotlyjs()[:300]
    assert report_html.count(banner) == 1  # plotly.js inlined once
    assert report_html.index(banner) < report_html.index("Plotly.newPlot")


def _section(html: str, key: str) -> str:
    start = html.index(f'<section class="panel" id="{key}">')
    return html[start:html.index("</section>", start)]


def test_report_has_every_panel_with_data(report_html):
    for panel in panels.PANELS:
        assert f'<section class="panel" id="{panel.key}">' in report_html, panel.key
        if panel.key != "evol":  # the augmented run's panel (test_evol_report)
            assert f'<a href="#{panel.key}"' in report_html
            assert "Not in this run" not in _section(report_html, panel.key), panel.key
    assert report_html.count("Plotly.newPlot") > 40  # every score column, funnel, dedup, DSIR, judge
    for text in ("Stage funnel of documents", "score_heuristics", "Quarantined rows of documents by reason",
                 "Largest clusters",
                 "DSIR selection assistant-like-web", "KL(target‖selected)", "Calibration <code>alpagasus-degraded",
                 "reference label"):
        assert text in report_html, text


def test_evol_report(evol_report):
    html = evol_report.read_text(encoding="utf-8")
    evol = _section(html, "evol")
    assert "Not in this run" not in evol and "Evolutions per round" in evol and "Survival by operation" in evol
    assert evol.count("Plotly.newPlot") >= 1 and not EXTERNAL.search(html)


def test_report_never_carries_markup_from_documents(report_html):
    assert "<script>window.__pwned" not in report_html and "<img src=x" not in report_html


def test_report_command_on_a_plain_run_marks_absent_panels(demo_run, tmp_path):
    import typer

    from thresher.cli.dashboards import dashboard, report

    app = typer.Typer()
    app.command()(dashboard)
    app.command()(report)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(demo_run.root), "--out", str(tmp_path / "plain.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "plain.html").read_text(encoding="utf-8")
    evol = html[html.index('id="evol"'):]  # the demo has no Evol-Instruct tables
    assert evol.index("Not in this run.") < evol.index("</section>")
    for key in ("dedup", "judges"):
        section = html[html.index(f'id="{key}"'):]
        assert "Not in this run." not in section[:section.index("</section>")]
    assert not EXTERNAL.search(html)
    assert "--out" in runner.invoke(app, ["report", "--help"]).output
    assert "--port" in runner.invoke(app, ["dashboard", "--help"]).output
    missing = runner.invoke(app, ["dashboard", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
