"""Runs for the dashboard tests, built once for the whole package.

`demo_run`: the embedded demo (real text: installed packages' READMEs and licences, ShareGPT,
a damaged shard), curated by the real flows, selections included.

`staged_run`: a copy of it taken through the later stages by their own code: a hostile shard
(markup as document text) through the real ingest and scorers, the real dedup stage (exact and
MinHash), a real DSIR fit toward the run's own instructions with weights and a Gumbel top-k
selection (with its random baseline). The judge and Evol-Instruct tables are stand-ins with the
shapes those stages are expected to write (formulas over the heuristics, not model output), since
those stages do not exist yet; so is `dedup/bare_clusters` (doc_id and cluster_id only), which
exercises the panel's derived columns.
"""

from __future__ import annotations

import json
import shutil
from unittest import mock

import duckdb
import pytest

from thresher.storage import catalog
from thresher.storage.run_dir import RunDir

# Text a hostile input could carry: the pages must show it as text, never as markup.
INJECTED = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b> ' * 3
INJECTED_URL = 'javascript:window.__pwned=3//"><script>window.__pwned=4</script>'


def _ingest_hostile_shard(run: RunDir) -> None:
    from thresher.config import IngestConfig, InputSpec
    from thresher.scorers.apply import score_shard
    from thresher.scorers.registry import build_scorer
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.readers import discover_shards

    path = run.root / "inputs" / "hostile" / "hostile.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two identical documents: an exact-duplicate cluster whose text is markup.
    path.write_text("\n".join(json.dumps({"text": INJECTED, "url": INJECTED_URL}) for _ in range(2)) + "\n")
    spec = InputSpec(paths=[str(path)], format="jsonl")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
        for name in ("heuristics", "langid"):
            score_shard(run, build_scorer(name), shard.table, shard.shard_id)


def _dsir(run: RunDir) -> None:
    from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
    from thresher.dsir.fit import fit_dsir, save_fit
    from thresher.dsir.resample import select_dsir
    from thresher.dsir.weights import DsirScorer
    from thresher.scorers.apply import score_shard

    catalog.build_catalog(run)
    fitted = fit_dsir(run, DsirConfig(targets=[DsirTarget(name="chat", sql="SELECT text FROM instructions")]))
    save_fit(run, fitted)
    scorer = DsirScorer.from_fit(fitted)
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    catalog.build_catalog(run)
    select_dsir(run, fitted, DsirSelection(name="chat-like", k=60, seed=0))


def _stand_ins(run: RunDir) -> None:
    con = duckdb.connect()
    try:
        con.execute("SET file_search_path = ?", [str(run.root)])

        def copy(sql: str, relative: str) -> None:
            (run.root / relative).parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY ({sql}) TO '{run.root / relative}' (FORMAT parquet)")

        copy("SELECT doc_id, exact_hash AS cluster_id FROM read_parquet('dedup/exact_clusters/*.parquet')",
             "dedup/bare_clusters/part-0.parquet")
        # A judge: an integer score, an expected score and raw output, some of it unparsed.
        copy("""SELECT doc_id,
                CASE WHEN hash(doc_id) % 10 = 0 THEN NULL
                     ELSE least(5, greatest(0, round(5 * coalesce(gopher_alpha_words_ratio, 0))))::INTEGER
                END AS judge_score,
                least(5.0, greatest(0.0, 5 * coalesce(gopher_alpha_words_ratio, 0)
                    + ((hash(doc_id) % 100) / 100.0 - 0.5))) AS judge_expected_score,
                CASE WHEN hash(doc_id) % 10 = 0 THEN 'I cannot rate this.' ELSE 'Educational score: 3' END
                    AS judge_raw
            FROM read_parquet('scores/heuristics@1/*.parquet')""", "scores/judge_edu@1/part-all.parquet")
        # Evol-Instruct: three rounds of candidates per instruction, some eliminated with a reason.
        copy("""SELECT doc_id, r AS round,
                ['add_constraints', 'deepening', 'concretizing', 'breadth'][1 + (hash(doc_id, r) % 4)::BIGINT]
                    AS evol_type,
                hash(doc_id, r) % 5 <> 0 AS survived,
                CASE WHEN hash(doc_id, r) % 5 <> 0 THEN NULL
                     ELSE ['no_information_gain', 'sorry_answer', 'copied_template'][1 + (hash(doc_id) % 3)::BIGINT]
                END AS elimination_reason
            FROM read_parquet('instructions/*.parquet'), range(1, 4) t(r)""", "evol/candidates/part-0.parquet")
    finally:
        con.close()


def stage_run(run: RunDir) -> RunDir:
    """Take a curated run through the later stages (see the module docstring)."""
    from thresher.dedup.config import DedupConfig
    from thresher.dedup.stage import dedup_run

    _ingest_hostile_shard(run)
    dedup_run(run.root, DedupConfig(threads=1, memory_limit="512MB"))
    _dsir(run)
    _stand_ins(run)
    # Evol-Instruct's directory is not a stage-table directory of the catalog yet.
    with mock.patch.object(catalog, "STAGE_TABLE_DIRS", (*catalog.STAGE_TABLE_DIRS, "evol")):
        catalog.build_catalog(run)
    return run


@pytest.fixture(scope="package")
def staged_run(demo_run, tmp_path_factory) -> RunDir:
    target = tmp_path_factory.mktemp("dash-staged") / "run"
    shutil.copytree(demo_run.root, target, ignore=shutil.ignore_patterns(".prefect-results", "inputs"))
    return stage_run(RunDir(target))


@pytest.fixture(scope="package")
def staged_report(staged_run, tmp_path_factory):
    """The static report of `staged_run`, written once (checked as text and in the browser)."""
    from thresher.dashboards.report import write_report

    return write_report(staged_run, tmp_path_factory.mktemp("report") / "sub" / "report.html")
