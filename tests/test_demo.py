"""The embedded demo, end to end, on a smaller slice of its corpus."""


from thresher.augment.eliminate import ELIMINATION_REASONS
from thresher.demo import AUGMENT_QUERIES, DEMO_AUGMENT, EXAMPLE_QUERIES
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir


def test_demo_curates_its_embedded_corpus(demo_result):
    result = demo_result
    ingest = result["ingest"]
    assert ingest["rows_in"] == ingest["rows_written"] + ingest["rows_quarantined"]
    assert set(ingest["quarantine_reasons"]) == {
        "truncated_archive", "invalid_json", "invalid_utf8", "empty_text", "non_string_text", "missing_text"}
    run = RunDir(result["run_dir"])
    with open_catalog(run) as con:
        docs, instructions = con.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM instructions)").fetchall()[0]
        assert docs > 100 and 0 < instructions <= 40
        # Licence files make exact duplicates: the corpus exercises dedup.
        copies = con.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM documents GROUP BY hash(text))").fetchall()
        assert copies[0][0] >= 3
        assert con.execute("SELECT count(*) FROM instructions_scored WHERE lang IS NOT NULL").fetchall()[0][0] > 0
        # The SLM judge graded a seeded sample; every other row says it was not sampled.
        judged, unsampled = con.execute(
            "SELECT count(judge_alpagasus_score), count(*) FILTER (judge_alpagasus_parse_error = 'not_sampled') "
            "FROM instructions_scored").fetchall()[0]
        assert judged >= 1 and judged + unsampled == instructions
        # Embeddings: every instruction has a vector, a semdedup verdict and the distilled judge's score.
        embedded = con.execute(
            "SELECT count(embed_vector), count(semdedup_is_duplicate), count(distilled_judge_alpagasus_score) "
            "FROM instructions_scored").fetchall()[0]
        assert embedded == (instructions,) * 3
        assert con.execute("SELECT count(*) FROM selections_diverse_instructions").fetchall()[0][0] > 0
        # The fastText classifier learnt the judge's sample and scored every instruction; its run-wide
        # percentile selected the top decile.
        classified, top = con.execute(
            "SELECT count(classifier_quality_score), count(*) FILTER (classifier_quality_pct >= 90) "
            "FROM instructions_scored").fetchall()[0]
        assert classified == instructions and 0 < top <= instructions // 5
        selected = con.execute("SELECT count(*) FROM selections_classifier_top_decile").fetchall()[0][0]
        assert 0 < selected <= top
        # Decontamination: the documents quoting a passage of the demo's package quiz are flagged, and every
        # SQL selection drops them in its first step.
        flagged = con.execute("SELECT count(*) FROM documents_scored WHERE decontam_overlap > 0 "
                              "AND decontam_benchmark = 'package_quiz'").fetchall()[0][0]
        assert flagged >= 1
        assert con.execute("SELECT count(*) FROM selections_clean_web JOIN documents_scored USING (doc_id) "
                           "WHERE decontam_overlap > 0").fetchall()[0][0] == 0
        # Train-and-compare: both selections against random, 3 seeds each, on the held-out answers.
        arms = con.execute("SELECT arm, count(DISTINCT seed), min(train_tokens) = max(train_tokens) "
                           "FROM eval_results GROUP BY arm ORDER BY arm").fetchall()
        assert arms == [("assistant-like-web", 3, True), ("clean-web", 3, True), ("random", 3, True)]
        for query in EXAMPLE_QUERIES:
            assert con.execute(query).fetchall(), query
    assert (run.root / "recipe.yaml").is_file()
    funnel = {s["name"]: s["funnel"][1]["step"] for s in result["selections"]}
    assert set(funnel.values()) == {"decontaminated"}
    (evaluated,) = result["eval"]["evals"]
    assert sorted(r["selection"] for r in evaluated["summary"]) == ["assistant-like-web", "clean-web"]
    assert (run.root / evaluated["plot"]).is_file()
    # Evol-Instruct: every attempt survived or carries one of the four reasons, with full lineage.
    augmented = RunDir(result["augment"]["output_run"])
    with open_catalog(augmented) as con:
        attempts, survived, reasons, missing_lineage = con.execute(
            "SELECT count(*), count(*) FILTER (survived), list(DISTINCT elimination_reason) FILTER (NOT survived), "
            "count(*) FILTER (parent_id IS NULL OR root_id IS NULL OR operation IS NULL OR model IS NULL) "
            "FROM augment_attempts").fetchall()[0]
        assert attempts == 2 * DEMO_AUGMENT.sample and missing_lineage == 0  # every seed, 2 rounds
        assert set(reasons or []) <= set(ELIMINATION_REASONS)
        assert attempts == survived + sum(n for (n,) in con.execute(
            "SELECT count(*) FROM augment_attempts WHERE NOT survived GROUP BY elimination_reason").fetchall())
        assert con.execute("SELECT count(*) FROM instructions").fetchall()[0][0] == survived
        for query in AUGMENT_QUERIES:
            assert con.execute(query).fetchall(), query
