"""Panel data on a real demo run (and on a copy with later stages' tables), checked against SQL."""

from __future__ import annotations

import json

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
    assert set(dedup_steps) == {"after dedup (score_exact_dedup)", "after dedup (score_minhash_dedup)"}
    assert steps == {"rows in": funnel.rows_in, "written": funnel.rows_written, **dedup_steps, **selections}
    assert funnel.rows_written > dedup_steps["after dedup (score_exact_dedup)"] >= \
        dedup_steps["after dedup (score_minhash_dedup)"] > 0


def test_run_summary_lists_stages_tables_and_views(demo):
    summary = d.run_summary(demo)
    stages = {s.name: s for s in summary.stages}
    assert stages["ingest"].status == "finished"
    assert stages["ingest"].counts["rows_in"] == d.funnel(demo).rows_in
    assert {r["scorer"] for r in stages["score"].tables["summary"]} == {
        "heuristics@1", "langid@1", "kenlm@1", "lm_perplexity@1"}
    assert summary.table_rows["documents"] > 100
    assert ("documents", "every documents row of the run") in summary.views


def test_score_views_leave_out_aliases_and_list_numeric_columns(demo):
    views = d.score_views(demo)
    # score_*_v1 are the same tables; the demo runs dedup, DSIR, a judge and the embedding stages as
    # well as the scorers.
    assert views == ["score_distilled_judge_alpagasus", "score_dsir", "score_embed", "score_exact_dedup",
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
    assert present == {"overview", "scores", "samples", "quarantine", "selections", "dedup", "judges"}


# -- later stages -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def staged(staged_run):
    with d.read_catalog(staged_run) as cat:
        yield cat


def test_every_panel_applies_once_the_stage_tables_exist(staged):
    assert {p.key for p in panels.PANELS if p.applies(staged)} == {p.key for p in panels.PANELS}


def test_dedup_sources_follow_the_dedup_stage_tables(staged):
    sources = {s.view: s for s in d.dedup_sources(staged)}
    assert list(sources)[:2] == ["score_exact_dedup", "score_minhash_dedup"]  # sidecars first
    assert set(sources) == {"score_exact_dedup", "score_minhash_dedup", "dedup_clusters", "dedup_exact_clusters",
                            "dedup_bare_clusters"}
    assert sources["score_minhash_dedup"].key_column == "minhash_cluster_id"
    assert sources["score_exact_dedup"].key_column == "exact_hash"
    assert sources["dedup_bare_clusters"].derived == ("cluster_size", "survivor_id", "is_duplicate")
    assert d.dedup_source(staged, None).view == "score_minhash_dedup"


def test_exact_clusters_are_the_corpus_exact_duplicates(staged):
    # Exact dedup hashes normalised text: identical raw texts are the floor of what it finds.
    expected_clusters, expected_dups, largest = staged.rows(
        "SELECT count(*), sum(n - 1), max(n) FROM (SELECT count(*) AS n FROM score_exact_dedup GROUP BY exact_hash) "
        "WHERE n > 1")[0]
    raw_dups = staged.scalar("SELECT sum(n - 1) FROM (SELECT count(*) AS n FROM documents GROUP BY text "
                             "UNION ALL SELECT count(*) FROM instructions GROUP BY text)")
    assert expected_dups >= raw_dups > 0
    for view in ("score_exact_dedup", "dedup_exact_clusters", "dedup_bare_clusters"):
        summary = d.dedup_summary(staged, d.dedup_source(staged, view))
        assert (summary.clusters, summary.duplicates, summary.largest) == (expected_clusters, expected_dups, largest)
        assert sum(n for _, n in summary.size_counts) == expected_clusters
        assert sum(size * n for size, n in summary.size_counts) == summary.clustered_documents


def test_cluster_browser_pages_and_members(staged):
    source = d.dedup_source(staged, "score_minhash_dedup")
    summary = d.dedup_summary(staged, source)
    assert summary.documents == staged.scalar("SELECT count(*) FROM score_minhash_dedup")
    assert summary.duplicates == staged.scalar("SELECT count(*) FROM score_minhash_dedup WHERE minhash_is_duplicate")
    first, second = (d.dedup_clusters(staged, source, page=p, per_page=5) for p in (1, 2))
    assert first.total == summary.clusters and first.clusters[0].size == summary.largest
    assert {c.cluster_id for c in first.clusters}.isdisjoint(c.cluster_id for c in second.clusters)
    sizes = [c.size for c in first.clusters + second.clusters]
    assert sizes == sorted(sizes, reverse=True)
    top = first.clusters[0]
    members = d.cluster_members(staged, source, top.cluster_id, limit=500)
    assert len(members) == top.size and members[0].is_survivor and members[0].doc_id == top.survivor_id
    assert sum(m.is_duplicate for m in members) == top.size - 1 == top.duplicates
    assert all(m.text for m in members)
    with pytest.raises(d.NotFound):
        d.cluster_members(staged, source, "' OR 1=1 --")


def test_funnel_continues_through_dedup_and_selections(staged):
    steps = {s.label: s.rows for s in d.funnel(staged).steps}
    written = steps["written"]
    assert written == staged.scalar("SELECT (SELECT count(*) FROM documents) + (SELECT count(*) FROM instructions)")
    for view, column in (("score_exact_dedup", "exact_is_duplicate"), ("score_minhash_dedup", "minhash_is_duplicate")):
        duplicates = staged.scalar(f"SELECT count(*) FILTER (WHERE {column}) FROM {view}")
        assert steps[f"after dedup ({view})"] == written - duplicates
    assert steps["selection chat-like"] == 60
    assert not any("dedup_" in label for label in steps)  # the cluster tables repeat the sidecars


def test_selections_carry_their_metadata(staged, staged_run):
    by_name = {s.name: s for s in d.selections(staged)}
    dsir = by_name["chat-like"]
    meta = json.loads((staged_run.root / "selections" / "chat-like" / "selection.json").read_text())
    assert dsir.view == "selections_chat_like" and dsir.is_dsir and dsir.dsir_targets == ["chat"]
    assert dsir.rows == meta["selected_rows"] == 60
    recipe = by_name["clean-web"]  # a SQL recipe of the demo
    assert not recipe.is_dsir and recipe.funnel[0]["step"] == "all"
    assert recipe.rows == recipe.funnel[-1]["rows"]


def test_dsir_pool_vs_selected_vs_random_baseline(staged):
    assert ("score_dsir", "dsir_chat_log_weight") in d.dsir_columns(staged)
    (comparison,) = d.dsir_comparisons(staged)
    assert (comparison.view, comparison.column, comparison.selection) == (
        "score_dsir", "dsir_chat_log_weight", "selections_chat_like")
    assert sum(comparison.selected) == comparison.selected_rows == 60
    assert sum(comparison.baseline) == comparison.baseline_rows == 60
    assert sum(comparison.pool) == comparison.pool_rows == staged.scalar("SELECT count(*) FROM score_dsir")
    assert comparison.selected_mean > comparison.pool_mean  # DSIR picks the heaviest weights
    with pytest.raises(d.NotFound):
        d.compare_distribution(staged, "score_dsir", "dsir_chat_log_weight", "documents")


def test_dsir_fit_and_selection_report(staged):
    (fit,) = d.dsir_fit_distributions(staged)
    assert (fit.view, fit.target, fit.buckets_total) == ("dsir_fits", "chat", 10_000)
    assert fit.p_target == sorted(fit.p_target, reverse=True) and fit.kl_target_raw > 0
    report = d.dsir_selection_report(staged, d.selection(staged, "chat-like"))
    (target,) = report["targets"]
    assert target["target"] == "chat" and target["selected_docs"] == 60
    # The stage smooths raw counts (Krichevsky-Trofimov); the panel uses the fit's stored p_raw.
    assert target["kl_target_raw"] == pytest.approx(fit.kl_target_raw, rel=0.02)
    assert {"p_target", "p_raw", "p_selected", "p_random"} <= set(target["top_buckets"][0])
    assert d.dsir_selection_report(staged, d.selection(staged, "clean-web")) is None


def test_judge_panel_counts_unparsed_output_and_calibrates(staged):
    assert "score_judge_edu" in d.judge_views(staged)  # the staged table, beside the demo's own judge
    judge = d.judge_view(staged, "score_judge_edu")
    assert judge.score_columns == ["judge_score", "judge_expected_score"]
    assert judge.unparsed["judge_score"] == staged.scalar(
        "SELECT count(*) FROM score_judge_edu WHERE judge_score IS NULL")
    assert judge.unparsed["judge_expected_score"] == 0
    cal = judge.calibration
    assert cal is not None and (cal.x, cal.y) == ("judge_score", "judge_expected_score")
    assert cal.pairs == sum(cal.counts) == sum(map(sum, cal.heat))
    assert 0 < cal.pearson <= 1  # the expected score follows the score


def test_evol_survival_per_round_and_reason(staged):
    (view,) = d.evol_views(staged)
    evol = d.evol_survival(staged, view)
    assert evol.round_column == "round" and [r for r, _, _ in evol.per_round] == ["1", "2", "3"]
    assert sum(n for _, n, _ in evol.per_round) == evol.rows
    survived = staged.scalar(f"SELECT count(*) FILTER (WHERE survived) FROM {view}")
    assert sum(k for _, _, k in evol.per_round) == survived == sum(k for _, _, k in evol.per_kind)
    assert sum(n for _, n in evol.reasons) == evol.rows - survived
