"""Panel data on the real demo run (and on a copy taken further by the stages), checked against SQL."""

from __future__ import annotations

import duckdb
import pytest

from thresher.dashboards import data as d
from thresher.dashboards import panels


@pytest.fixture(scope="module")
def demo(demo_run):
    with d.read_catalog(demo_run) as cat:
        yield cat


def test_funnel_reconciles_with_the_ingest_stats(demo, demo_run):
    funnel = d.funnel(demo)
    ingest = demo_run.read_manifest()["stages"]["ingest"]
    assert funnel.reconciled is True
    assert (funnel.rows_in, funnel.rows_written, funnel.rows_quarantined) == (
        ingest["rows_in"], ingest["rows_written"], ingest["rows_quarantined"])
    assert funnel.quarantine_reasons == ingest["quarantine_reasons"]
    assert sum(funnel.written_by_table.values()) == funnel.rows_written
    selections = {f"selection {s.name}": s.rows for s in d.selections(demo)}
    assert selections, "the demo curates selections"
    steps = {s.label: s.rows for s in funnel.steps}
    dedup_steps = {k: v for k, v in steps.items() if k.startswith("after dedup")}
    assert set(dedup_steps) == {"after dedup (score_exact_dedup)", "after dedup (score_minhash_dedup)",
                                "after dedup (score_semdedup)"}  # the declared sidecars: every document once
    semantic = demo.scalar("SELECT count(*) FILTER (WHERE semdedup_is_duplicate) FROM score_semdedup")
    assert dedup_steps["after dedup (score_semdedup)"] == funnel.rows_written - semantic
    assert steps == {"rows in": funnel.rows_in, "written": funnel.rows_written, **dedup_steps, **selections}
    assert funnel.rows_written > dedup_steps["after dedup (score_exact_dedup)"] >= \
        dedup_steps["after dedup (score_minhash_dedup)"] > 0


def test_run_summary_lists_stages_tables_and_views(demo):
    summary = d.run_summary(demo)
    stages = {s.name: s for s in summary.stages}
    assert stages["ingest"].status == "finished"
    assert stages["ingest"].counts["rows_in"] == d.funnel(demo).rows_in
    assert {r["scorer"] for r in stages["score"].tables["summary"]} == {
        "heuristics@1", "langid@1", "kenlm@1", "lm_perplexity@1", "decontam@1"}
    assert summary.table_rows["documents"] > 100
    assert ("documents", "every documents row of the run") in summary.views


def test_score_views_leave_out_aliases_and_list_numeric_columns(demo):
    views = d.score_views(demo)
    # score_*_v1 are the same tables; the demo runs dedup, DSIR, a judge, the embedding stages and a
    # classifier as well as the scorers (decontamination among them).
    assert views == ["score_classifier_quality", "score_classifier_quality_pct", "score_decontam",
                     "score_distilled_judge_alpagasus", "score_dsir", "score_embed", "score_exact_dedup",
                     "score_heuristics", "score_judge_alpagasus", "score_kenlm", "score_langid", "score_lm_perplexity",
                     "score_minhash_dedup", "score_semdedup"]
    columns = d.score_columns(demo)
    assert columns["score_langid"] == ["lang_score"]  # `lang` is text, doc_id an identifier
    assert {"text_n_chars", "gopher_word_count", "c4_has_curly_brace"} <= set(columns["score_heuristics"])


def test_histograms_account_for_every_value(demo):
    hists = d.histograms(demo, "score_heuristics")
    assert len(hists) == len(d.score_columns(demo)["score_heuristics"])
    rows = demo.scalar("SELECT count(*) FROM score_heuristics")
    for hist in hists:
        assert hist.rows == rows
        assert sum(hist.counts) + hist.below + hist.above == hist.values, hist.column
        assert hist.values == demo.scalar(
            f"SELECT count({d.quote_ident(hist.column)}) FROM score_heuristics"), hist.column
        assert len(hist.edges) == len(hist.counts) + 1
    by_name = {x.column: x for x in hists}
    curly = by_name["c4_has_curly_brace"]  # boolean: one bin for false, one for true
    assert curly.counts == [demo.scalar("SELECT count(*) FILTER (WHERE NOT c4_has_curly_brace) FROM score_heuristics"),
                            demo.scalar("SELECT count(*) FILTER (WHERE c4_has_curly_brace) FROM score_heuristics")]
    chars = by_name["text_n_chars"]  # long tail: the extreme 0.5 % on each side are counted, not drawn
    assert chars.above > 0 and chars.max > chars.edges[-1]


def test_bands_and_samples_agree_with_sql(demo):
    bands = d.score_bands(demo, "score_langid", "lang_score", 5)
    assert len(bands) == 5 and bands[0].lo <= bands[-1].hi
    band = bands[2]
    page = d.samples(demo, "score_langid", "lang_score", band.lo, band.hi, per_page=7, order="asc")
    assert page.total == band.rows == demo.scalar(
        "SELECT count(*) FROM score_langid WHERE lang_score BETWEEN ? AND ?", [band.lo, band.hi])
    values = [s.value for s in page.samples]
    assert len(values) == 7 and values == sorted(values)
    assert all(band.lo <= v <= band.hi for v in values)
    texts = dict(demo.rows("SELECT doc_id, text FROM documents UNION ALL SELECT doc_id, text FROM instructions"))
    for sample in page.samples:
        assert sample.text == texts[sample.doc_id][:4000] and sample.text_chars == len(texts[sample.doc_id])
        assert sample.table in {"documents", "instructions"}


def test_samples_paginate_without_overlap_and_reproducibly(demo):
    first = d.samples(demo, "score_heuristics", "gopher_word_count", 50, None, page=1, per_page=5, seed=3)
    second = d.samples(demo, "score_heuristics", "gopher_word_count", 50, None, page=2, per_page=5, seed=3)
    again = d.samples(demo, "score_heuristics", "gopher_word_count", 50, None, page=1, per_page=5, seed=3)
    assert {s.doc_id for s in first.samples}.isdisjoint(s.doc_id for s in second.samples)
    assert [s.doc_id for s in first.samples] == [s.doc_id for s in again.samples]
    assert first.pages == -(-first.total // 5)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"column": 'lang_score" FROM score_langid; --'}, d.NotFound),
    ({"column": "lang"}, d.NotFound),  # not numeric
    ({"view": "score_langid; DROP TABLE x"}, d.NotFound),
    ({"order": "random; DROP TABLE x"}, d.InvalidParameter),
    ({"page": 0}, d.InvalidParameter),
    ({"per_page": 10_000}, d.InvalidParameter),
    ({"lo": float("nan")}, d.InvalidParameter),
])
def test_samples_reject_bad_parameters(demo, kwargs, error):
    args = {"view": "score_langid", "column": "lang_score"} | kwargs
    with pytest.raises(error):
        d.samples(demo, **args)


def test_quarantine_page_filters_by_reason_as_a_parameter(demo):
    page = d.quarantine_page(demo, per_page=100)
    assert page.total == demo.scalar("SELECT count(*) FROM quarantine")
    assert sum(page.reasons.values()) == d.funnel(demo).rows_quarantined
    utf8 = d.quarantine_page(demo, "invalid_utf8")
    assert utf8.total == 1 and "caf\ufffd au lait" in utf8.rows[0].raw_preview
    assert d.quarantine_page(demo, "x' OR '1'='1").total == 0


def test_the_catalog_connection_is_read_only(demo):
    with pytest.raises(duckdb.Error):
        demo.rows("CREATE TABLE sneaky (a INTEGER)")


def test_evol_panel_is_absent_from_the_demo_run(demo):
    present = {p.key for p in panels.PANELS if p.applies(demo)}
    assert present == {"overview", "scores", "samples", "quarantine", "selections", "dedup", "judges", "eval"}
