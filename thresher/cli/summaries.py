"""The summary tables commands print after a stage: one printer per stage result, shared by the
stage's own command and by `curate`/`demo`."""

from __future__ import annotations

from thresher.cli.console import console, print_rows

SKIPPED_SHOWN = 20  # the rest is in the run's skipped_inputs.json


def print_ingest(result: dict) -> None:
    print_rows("ingest", [{
        "shards": result["shards"], "skipped (cached)": result["shards_skipped"], "rows in": result["rows_in"],
        "written": result["rows_written"], "quarantined": result["rows_quarantined"],
        "files quarantined": result.get("files_quarantined", 0), "files skipped": result.get("files_skipped", 0),
    }])
    if result["quarantine_reasons"]:
        print_rows("quarantine reasons", [{"reason": r, "rows": n} for r, n in result["quarantine_reasons"].items()])
    if result.get("files_over_quarantine_share"):
        print_rows("files mostly quarantined", [{"file": f["source"], "rows in": f["rows_in"],
                                                 "quarantined": f["rows_quarantined"]}
                                                for f in result["files_over_quarantine_share"]])
    if result.get("quarantined_files"):  # unreadable files: the run went on without them
        print_rows("quarantined files", [{"file": f["source"], "reason": f["reason"],
                                          "bytes": "gone" if f["bytes"] is None else f["bytes"]}
                                         for f in result["quarantined_files"]])
    print_skipped_inputs(result.get("skipped_inputs") or [])


def print_skipped_inputs(skipped: list[dict]) -> None:
    """Files a directory or glob held that ingest did not read: the first SKIPPED_SHOWN, then a count."""
    if not skipped:
        return
    shown = skipped[:SKIPPED_SHOWN]
    more = len(skipped) - len(shown)
    title = f"skipped files ({len(skipped):,}" + (f", the first {len(shown)} shown" if more else "") + ")"
    print_rows(title, [{"path": f["path"], "reason": f["reason"] + (f": {f['same_as']}" if f.get("same_as") else "")}
                       for f in shown])
    if more:
        print(f"... and {more:,} more skipped files (all of them: skipped_inputs.json in the run directory)")


def print_score(result: dict) -> None:
    print_rows("score", result["scorers"])


def print_dedup(result: dict | None) -> None:
    if not result:
        return
    print_rows("dedup", [
        {"table": table, "documents": t["documents"], "exact dups": t["exact_duplicates"],
         "near dups (MinHash)": t["minhash_duplicates"], "rate": f"{t['minhash_duplicate_rate']:.1%}",
         "clusters": t["minhash_clusters"]}
        for table, t in result["tables"].items()
    ])


def print_dsir(result: dict | None) -> None:
    if not result:
        return
    from thresher.dsir.report import kl_summary_rows

    print_rows("dsir", [{"fit": result["fit"]["fit_hash"], "weighted rows": result["weights"]["rows"],
                          "selection": (result.get("selection") or {}).get("name", "-"),
                          "selected": (result.get("selection") or {}).get("selected_rows", "-")}])
    if result.get("report"):
        keep = ("target", "selected_docs", "kl_target_selected", "kl_target_random", "kl_reduction_vs_random")
        print_rows("dsir: KL(target || sample), lower is closer",
                    [{k: row.get(k) for k in keep} for row in kl_summary_rows(result["report"])])


def print_judge(result: dict | None) -> None:
    if not result:
        return
    keep = ("judge", "rows", "not_sampled", "model_rows", "cache_hits", "parse_errors", "injection_flags",
            "rows_per_second")
    print_rows("judges", [{k: j.get(k) for k in keep} for j in result["judges"]])


def print_embeddings(result: dict | None) -> None:
    if not result:
        return
    for head in result.get("distill", []):
        print_rows(f"distilled head {head['name']} (vs the judge)", [
            {"split": split, **{k: m.get(k) for k in ("rows", "spearman", "mae", "baseline_mae", "f1")}}
            for split, m in head["metrics"].items() if isinstance(m, dict)])
    for selection in result.get("diversity", []):
        print_rows(f"diversity selection {selection['name']}",
                    [{k: v for k, v in selection.items() if isinstance(v, (int, float, str)) and k != "name"}])


def print_classifier_scoring(scoring: dict) -> None:
    binned = scoring["percentiles"]
    print_rows(f"scored with {scoring['scorer']}", [{
        "rows": scoring["scored_rows"], "shards": scoring["shards"], "shards_skipped": scoring["shards_skipped"],
        "seconds": scoring["score_seconds"], **binned.get("score_quantiles", {})}])
    console.print(f"columns: [bold]{scoring['score_column']}[/] (P(positive)), [bold]{scoring['percentile_column']}"
                  f"[/] (run-wide percentile, 0-100) in the <table>_scored views")


def print_classifiers(results: list[dict]) -> None:
    for result in results:
        rows = [{"split": split, "rows": m["rows"], "positive_f1": m["classes"]["positive"]["f1"],
                 "negative_f1": m["classes"]["negative"]["f1"], "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
                 "roc_auc": m["roc_auc"], "spearman": m["spearman"]} for split, m in result["metrics"].items()]
        print_rows(f"classifier {result['name']} ({result['source']}; {result['rows']['train']:,} training rows, "
                   f"model {result['model_hash']})", rows)
        console.print(f"model: [bold]{result['model_dir']}[/]")
        if "scoring" in result:
            print_classifier_scoring(result["scoring"])


def print_augment(result: dict | None) -> None:
    if not result:
        return
    print_rows(f"Evol-Instruct into {result['output_run']}", result["augment"]["rounds_table"])
    print_selections(result.get("selections") or [])


def print_selections(results: list[dict]) -> None:
    for result in results:
        rows = [{"step": s["step"], "rows": s["rows"]} for s in result["funnel"]]
        print_rows(f"selection {result['name']} ({result['table']})",
                    rows + [{"step": "selected", "rows": result["selected_rows"]}])


def print_evals(reports: list[dict]) -> None:
    """Each eval's summary: every selection against random, per eval set and probe."""
    for report in reports:
        rows = [{"selection": r["selection"], "measure": r["measure"], "mean": r["mean"], "std": r["std"],
                 "random": r["random_mean"], "random_std": r["random_std"], "gain": r["gain"],
                 "gain_%": r["gain_pct"], "seeds_better": f"{r['seeds_better']}/{r['seeds']}", "verdict": r["verdict"]}
                for r in report["summary"]]
        print_rows(f"eval {report['name']}: {report['budget_tokens']:,} training tokens per arm, "
                   f"{len(report['seeds'])} seeds (loss in nats/token; gain = random - selection)", rows)
        if report.get("overlap"):
            console.print(f"[bold red]warning[/]: eval sets overlap training data: {', '.join(report['overlap'])}")
        if report.get("plot"):
            console.print(f"curves: [bold]{report['plot']}[/] (in the run directory)")


def print_curation(result: dict) -> None:
    """Every stage's table of a `curate_flow` (or demo) result, in pipeline order."""
    print_ingest(result["ingest"])
    print_score(result["score"])
    print_dedup(result.get("dedup"))
    print_dsir(result.get("dsir"))
    print_judge(result.get("judge"))
    print_embeddings(result.get("embeddings"))
    print_classifiers((result.get("classifiers") or {}).get("classifiers", []))
    print_selections(result["selections"])
    print_evals((result.get("eval") or {}).get("evals", []))
    print_augment(result.get("augment"))
