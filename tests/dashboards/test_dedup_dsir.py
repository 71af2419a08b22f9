"""The dedup and selection/DSIR panels' data, from the tables those stages declare, checked against SQL
over the same tables (the demo's own DSIR selection; a staged copy deduplicated again with a hostile
exact-duplicate pair in it)."""

from __future__ import annotations

import json

import pytest

from thresher.dashboards import data as d
from thresher.dashboards import panels


@pytest.fixture(scope="module")
def demo(demo_run):
    with d.read_catalog(demo_run) as cat:
        yield cat


@pytest.fixture(scope="module")
def staged(staged_run):
    with d.read_catalog(staged_run) as cat:
        yield cat


def test_every_panel_but_evol_applies_to_the_staged_run(staged):
    # Evol-Instruct writes an augmented run of its own: its panel applies there (test_evol_panel).
    assert {p.key for p in panels.PANELS if p.applies(staged)} == {p.key for p in panels.PANELS} - {"evol"}


def test_dedup_sources_are_the_declared_cluster_tables(staged):
    sources = {s.view: s for s in d.dedup_sources(staged)}
    assert list(sources)[:3] == ["score_exact_dedup", "score_minhash_dedup", "score_semdedup"]  # sidecars first
    assert set(sources) == {"score_exact_dedup", "score_minhash_dedup", "score_semdedup", "dedup_clusters",
                            "dedup_exact_clusters", "semdedup_groups"}
    assert sources["score_minhash_dedup"].key_column == "minhash_cluster_id"
    assert sources["score_exact_dedup"].key_column == "exact_hash"
    assert sources["score_semdedup"].key_column == "semdedup_group"
    assert d.dedup_source(staged, None).view == "score_minhash_dedup"
    # The stages' other tables are listed, not charted.
    assert {"dedup_edges", "dedup_signatures", "dedup_band_keys"} <= set(d.other_dedup_tables(staged))


def test_exact_clusters_are_the_corpus_exact_duplicates(staged):
    # Exact dedup hashes normalised text: identical raw texts are the floor of what it finds.
    expected_clusters, expected_dups, largest = staged.rows(
        "SELECT count(*), sum(n - 1), max(n) FROM (SELECT count(*) AS n FROM score_exact_dedup GROUP BY exact_hash) "
        "WHERE n > 1")[0]
    raw_dups = staged.scalar("SELECT sum(n - 1) FROM (SELECT count(*) AS n FROM documents GROUP BY text "
                             "UNION ALL SELECT count(*) FROM instructions GROUP BY text)")
    assert expected_dups >= raw_dups > 0
    for view in ("score_exact_dedup", "dedup_exact_clusters"):
        summary = d.dedup_summary(staged, d.dedup_source(staged, view))
        assert (summary.clusters, summary.duplicates, summary.largest) == (expected_clusters, expected_dups, largest)
        assert sum(n for _, n in summary.size_counts) == expected_clusters
        assert sum(size * n for size, n in summary.size_counts) == summary.clustered_documents


def test_semantic_groups_match_the_semdedup_sidecar(staged):
    summary = d.dedup_summary(staged, d.dedup_source(staged, "score_semdedup"))
    assert summary.documents == staged.scalar("SELECT count(*) FROM score_semdedup")
    assert summary.duplicates == staged.scalar("SELECT count(*) FILTER (WHERE semdedup_is_duplicate) "
                                               "FROM score_semdedup")
    assert summary.clusters == staged.scalar("SELECT count(DISTINCT semdedup_group) FROM score_semdedup "
                                             "WHERE semdedup_group_size > 1")


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


def test_funnel_continues_through_dedup_and_selections(staged, staged_run):
    steps = {s.label: s.rows for s in d.funnel(staged).steps}
    written = steps["written"]
    assert written == staged.scalar("SELECT (SELECT count(*) FROM documents) + (SELECT count(*) FROM instructions)")
    for view, column in (("score_exact_dedup", "exact_is_duplicate"), ("score_minhash_dedup", "minhash_is_duplicate"),
                         ("score_semdedup", "semdedup_is_duplicate")):
        duplicates = staged.scalar(f"SELECT count(*) FILTER (WHERE {column}) FROM {view}")
        assert steps[f"after dedup ({view})"] == written - duplicates
    meta = json.loads((staged_run.root / "selections" / "assistant-like-web" / "selection.json").read_text())
    assert steps["selection assistant-like-web"] == meta["selected_rows"] == 100
    assert not any("dedup_" in label or "semdedup_" in label for label in steps)  # tables repeat the sidecars


def test_selections_carry_their_metadata(demo, demo_run):
    by_name = {s.name: s for s in d.selections(demo)}
    dsir = by_name["assistant-like-web"]
    meta = json.loads((demo_run.root / "selections" / "assistant-like-web" / "selection.json").read_text())
    assert dsir.view == "selections_assistant_like_web" and dsir.is_dsir and dsir.dsir_targets == ["assistant"]
    assert dsir.rows == meta["selected_rows"] == 100
    recipe = by_name["clean-web"]  # a SQL recipe of the demo
    assert not recipe.is_dsir and recipe.funnel[0]["step"] == "all"
    assert recipe.rows == recipe.funnel[-1]["rows"]


def test_dsir_pool_vs_selected_vs_random_baseline(demo):
    assert d.dsir_columns(demo) == [("score_dsir", "dsir_assistant_log_weight")]
    (comparison,) = d.dsir_comparisons(demo)
    assert (comparison.view, comparison.column, comparison.selection) == (
        "score_dsir", "dsir_assistant_log_weight", "selections_assistant_like_web")
    assert sum(comparison.selected) == comparison.selected_rows == 100
    assert sum(comparison.baseline) == comparison.baseline_rows == demo.scalar(
        "SELECT count(*) FROM dsir_baselines WHERE selection = 'assistant-like-web'") == 100
    assert sum(comparison.pool) == comparison.pool_rows == demo.scalar(
        "SELECT count(dsir_assistant_log_weight) FROM score_dsir")
    selected_mean = demo.scalar("SELECT avg(dsir_assistant_log_weight) FROM score_dsir "
                                "WHERE doc_id IN (SELECT doc_id FROM selections_assistant_like_web)")
    assert comparison.selected_mean == pytest.approx(selected_mean)
    assert comparison.selected_mean > comparison.pool_mean  # DSIR picks the heaviest weights
    with pytest.raises(d.NotFound):
        d.compare_distribution(demo, "score_dsir", "dsir_assistant_log_weight", "documents")


def test_dsir_fit_and_selection_report(demo):
    (fit,) = d.dsir_fit_distributions(demo)
    assert (fit.view, fit.target, fit.buckets_total) == ("dsir_fits", "assistant", 10_000)
    assert fit.p_target == sorted(fit.p_target, reverse=True) and fit.kl_target_raw > 0
    assert fit.p_target[0] == pytest.approx(demo.scalar(
        "SELECT max(prob) FROM dsir_fits WHERE distribution = 'assistant' AND fit_hash = ?", [fit.fit_hash]))
    report = d.dsir_selection_report(demo, d.selection(demo, "assistant-like-web"))
    (target,) = report["targets"]
    assert target["target"] == "assistant" and target["selected_docs"] == 100
    # The stage smooths raw counts (Krichevsky-Trofimov); the panel uses the fit's stored p_raw.
    assert target["kl_target_raw"] == pytest.approx(fit.kl_target_raw, rel=0.02)
    assert {"p_target", "p_raw", "p_selected", "p_random"} <= set(target["top_buckets"][0])
    assert d.dsir_selection_report(demo, d.selection(demo, "clean-web")) is None
