import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from thresher.cli import app
from thresher.schema import DOCUMENT_SCHEMA, make_doc_id
from thresher.storage.catalog import build_catalog
from thresher.storage.parquet_io import write_table_atomic
from thresher.storage.run_dir import RunDir

runner = CliRunner()
COMMANDS = ["ingest", "score", "curate", "dedup", "dsir", "select", "export", "sql", "serve", "scorers", "demo",
            "dashboard", "report", "perplexity", "train-kenlm", "train-proxy"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_documents_itself(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output.splitlines()) > 5


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


def test_ingest_of_a_missing_input_names_it(tmp_path):
    # A real process: the flow starts Prefect, whose log handler must not bind to CliRunner's buffer.
    script = str(Path(sys.executable).parent / "thresher")
    out = subprocess.run([script, "ingest", str(tmp_path / "run"), str(tmp_path / "absent.jsonl")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "absent.jsonl" in out.stderr
