"""The `thresher` command line: every top-level command run for real (`scorers` in test_score.py; the
stage sub-apps, export, perplexity, report and dashboard in their stages' tests), and the installed
script."""

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from thresher.cli import app
from thresher.schema import DOCUMENT_SCHEMA, make_doc_id
from thresher.storage.catalog import build_catalog, open_catalog
from thresher.storage.parquet_io import write_table_atomic
from thresher.storage.run_dir import RunDir

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_without_arguments_the_commands_are_listed():
    result = invoke()
    assert result.exit_code in (0, 2), result.output
    for command in ("ingest", "score", "curate", "dedup", "select", "sql", "serve", "scorers", "demo", "export",
                    "perplexity", "dashboard", "report", "train-kenlm", "train-proxy", "dsir", "judge",
                    "embeddings", "augment"):
        assert f" {command} " in result.output, command


@pytest.mark.usefixtures("prefect_for_cli")
def test_ingest_score_dedup_select_on_a_real_sample(sample_data, tmp_path):
    lines = (sample_data / "c4_sample.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    source = tmp_path / "web.jsonl"
    source.write_text("\n".join(lines + lines[:5] + ["{not json"]) + "\n", encoding="utf-8")  # 5 copies, 1 bad row
    run_dir = tmp_path / "run"

    ingested = invoke("ingest", str(run_dir), str(source))
    assert ingested.exit_code == 0, ingested.output
    assert "invalid_json" in ingested.output and str(run_dir) in ingested.output.replace("\n", "")
    with open_catalog(RunDir(run_dir)) as con:
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(45,)]
        assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(1,)]

    scored = invoke("score", str(run_dir), "-s", "heuristics")
    assert scored.exit_code == 0, scored.output
    assert "heuristics@1" in scored.output
    unknown = invoke("score", str(run_dir), "-s", "no_such_scorer")
    assert unknown.exit_code == 2 and "no_such_scorer" in unknown.output

    deduped = invoke("dedup", str(run_dir))
    assert deduped.exit_code == 0, deduped.output
    with open_catalog(RunDir(run_dir)) as con:
        assert con.execute("SELECT count(*) FILTER (exact_is_duplicate) FROM documents_scored").fetchall() == [(5,)]

    recipe = tmp_path / "long.yaml"
    recipe.write_text("name: long_unique\ntable: documents\nwhere:\n"
                      "  - {name: unique, sql: NOT exact_is_duplicate}\n"
                      "  - {name: long, sql: gopher_word_count >= 100}\n", encoding="utf-8")
    selected = invoke("select", str(run_dir), str(recipe))
    assert selected.exit_code == 0, selected.output
    assert "long_unique" in selected.output
    with open_catalog(RunDir(run_dir)) as con:
        (count,) = con.execute("SELECT count(*) FROM documents_scored WHERE NOT exact_is_duplicate "
                               "AND gopher_word_count >= 100").fetchall()[0]
        assert con.execute("SELECT count(*) FROM selections_long_unique").fetchall() == [(count,)]
    assert 0 < count < 40 and str(count) in selected.output


def test_serve_names_a_missing_deployments_file(tmp_path):
    result = invoke("serve", "--prefect-yaml", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2 and "absent.yaml" in result.output


def test_demo_command_prints_the_curation_and_queries_to_try(demo_result, monkeypatch, tmp_path):
    """The `demo` command around thresher.demo.run_demo (whose run is the session's demo run)."""
    import thresher.demo

    calls = []
    monkeypatch.setattr(thresher.demo, "run_demo", lambda run_dir, n: calls.append((run_dir, n)) or demo_result)
    result = invoke("demo", str(tmp_path / "mine"), "--conversations", "40")
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "mine", 40)]
    assert "demo finished" in result.output and "Try:" in result.output
    shown = [line.strip() for line in result.output.splitlines() if " sql " in line]
    assert len(shown) == len(demo_result["example_queries"])
    assert all(str(tmp_path / "mine") in line for line in shown)


@pytest.fixture
def small_run(tmp_path) -> Path:
    run = RunDir(tmp_path / "run")
    run.init()
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    batch = pa.RecordBatch.from_arrays(
        [pa.array([make_doc_id("f" * 32, i) for i in range(3)]), pa.array(texts, pa.large_string()),
         pa.array(["x.jsonl"] * 3), pa.array([0, 1, 2], pa.int64()), pa.array(["u1", None, "u3"]),
         pa.array([None] * 3, pa.timestamp("us", tz="UTC")), pa.array([None] * 3, pa.string())],
        schema=DOCUMENT_SCHEMA,
    )
    write_table_atomic(run.table_part("documents", "s1"), [batch], DOCUMENT_SCHEMA)
    build_catalog(run)
    return run.root


def test_sql_prints_a_table_csv_and_json(small_run):
    query = "SELECT source_row, length(text) AS chars FROM documents ORDER BY source_row"
    table = runner.invoke(app, ["sql", str(small_run), query])
    assert table.exit_code == 0, table.output
    assert "chars" in table.output and "18" in table.output
    csv = runner.invoke(app, ["sql", str(small_run), query, "-o", "csv"])
    assert csv.output.splitlines() == ["source_row,chars", "0,10", "1,5", "2,18"]
    json_out = runner.invoke(app, ["sql", str(small_run), query, "-o", "json", "--max-rows", "1"])
    assert '"chars": 10' in json_out.output and '"chars": 5' not in json_out.output


def test_sql_errors_are_reported_not_raised(small_run, tmp_path):
    bad = runner.invoke(app, ["sql", str(small_run), "SELECT nope FROM documents"])
    assert bad.exit_code == 2 and "nope" in bad.output
    missing = runner.invoke(app, ["sql", str(tmp_path / "nowhere"), "SELECT 1"])
    assert missing.exit_code == 2 and "catalog.duckdb" in missing.output


def test_sql_shell_reads_statements_until_quit(small_run):
    result = runner.invoke(app, ["sql", str(small_run)],
                           input="SELECT count(*)\n AS n FROM documents;\nCREATE TABLE t AS SELECT 1;\n.quit\n")
    assert result.exit_code == 0, result.output
    assert "3" in result.output
    assert "read-only" in result.output.lower()  # the write was refused, the shell went on


def test_console_script_is_installed(small_run):
    script = str(Path(sys.executable).parent / "thresher")
    out = subprocess.run([script, "sql", str(small_run), "SELECT count(*) AS n FROM documents", "-o", "csv"],
                         capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.splitlines() == ["n", "3"]


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_of_a_missing_input_names_it(tmp_path):
    # A real process: the flow starts Prefect, whose log handler must not bind to CliRunner's buffer.
    # It talks to this session's Prefect API rather than starting its own (~25 s).
    from prefect.settings import PREFECT_API_URL

    script = str(Path(sys.executable).parent / "thresher")
    out = subprocess.run([script, "ingest", str(tmp_path / "run"), str(tmp_path / "absent.jsonl")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "absent.jsonl" in out.stderr


@pytest.mark.usefixtures("prefect_for_cli")
def test_ingest_text_mode_lines_makes_every_line_a_document(sample_data, tmp_path):
    """A Wikipedia dump with one article a line: `--text-mode lines` gives one document per article,
    the default one document for the file."""
    articles = (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8").splitlines()[:6]
    source = tmp_path / "wiki.txt"
    source.write_text("\n".join(articles) + "\n\n", encoding="utf-8")
    for mode, expected in (("lines", len([a for a in articles if a.strip()])), ("file", 1)):
        run_dir = tmp_path / f"run-{mode}"
        ingested = invoke("ingest", str(run_dir), str(source), "--text-mode", mode)
        assert ingested.exit_code == 0, ingested.output
        with open_catalog(RunDir(run_dir)) as con:
            assert con.execute("SELECT count(*) FROM documents").fetchall() == [(expected,)]
    bad = invoke("ingest", str(tmp_path / "run-bad"), str(source), "--text-mode", "paragraphs")
    assert bad.exit_code == 2 and "text_mode" in bad.output
