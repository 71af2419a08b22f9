"""`thresher sql` as a user pipes it: the installed script in a real process with a 40-column terminal,
its stdout parsed by the json and csv readers and compared with the run's Parquet read directly."""

import base64
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.schema import DOCUMENT_SCHEMA, make_doc_id
from thresher.storage.catalog import build_catalog
from thresher.storage.parquet_io import write_table_atomic
from thresher.storage.run_dir import RunDir

SCRIPT = str(Path(sys.executable).parent / "thresher")
TEXTS = [
    "first line\nsecond line\r\nthird",
    'she said "hi", then left',
    "comma,separated,values",
    "ünïcødé — 日本語 🎉",
    " ".join(f"word{i}" for i in range(1500)),  # ~12,000 characters, far past any terminal
]
QUERY = "SELECT doc_id, text, source_row, url, timestamp FROM documents ORDER BY source_row"


@pytest.fixture
def tricky_run(tmp_path) -> Path:
    """Built like test_main's `small_run`, with texts a wrapping or quoting bug would corrupt."""
    run = RunDir(tmp_path / "run")
    run.init()
    n = len(TEXTS)
    batch = pa.RecordBatch.from_arrays(
        [pa.array([make_doc_id("e" * 32, i) for i in range(n)]), pa.array(TEXTS, pa.large_string()),
         pa.array(["x.jsonl"] * n), pa.array(range(n), pa.int64()),
         pa.array(["https://a.example/" + "p" * 90, None, "", "u", "v"]),
         pa.array([1_700_000_000_123_456, None, 0, None, None], pa.timestamp("us", tz="UTC")),
         pa.array([None] * n, pa.string())],
        schema=DOCUMENT_SCHEMA,
    )
    write_table_atomic(run.table_part("documents", "s1"), [batch], DOCUMENT_SCHEMA)
    build_catalog(run)
    return run.root


def thresher_sql(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "40", "LINES": "10"}
    # Bytes, decoded by hand: text mode would turn a "\r\n" inside a value into "\n".
    done = subprocess.run([SCRIPT, "sql", *args], capture_output=True, env=env, cwd="/", timeout=120,
                          input=None if stdin is None else stdin.encode())
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8"),
                                       done.stderr.decode("utf-8"))


def expected_rows(run: Path) -> list[dict]:
    """The documents as JSON should write them: timestamps in ISO 8601, nulls as None."""
    table = pq.read_table(next((run / "documents").glob("part-*.parquet"))).sort_by("source_row")
    rows = table.select(["doc_id", "text", "source_row", "url", "timestamp"]).to_pylist()
    return [{**r, "timestamp": r["timestamp"] and r["timestamp"].isoformat()} for r in rows]


def test_json_and_jsonl_are_exact_in_a_narrow_terminal(tricky_run):
    expected = expected_rows(tricky_run)
    as_json = thresher_sql(str(tricky_run), QUERY, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    as_jsonl = thresher_sql(str(tricky_run), QUERY, "-o", "jsonl")
    assert as_jsonl.returncode == 0, as_jsonl.stderr
    assert [json.loads(line) for line in as_jsonl.stdout.splitlines()] == expected
    assert "日本語" in as_jsonl.stdout  # UTF-8, not \u-escaped
    assert isinstance(expected[0]["source_row"], int) and expected[1]["url"] is None


def test_csv_round_trips_newlines_quotes_and_commas(tricky_run):
    result = thresher_sql(str(tricky_run), QUERY, "-o", "csv")
    assert result.returncode == 0, result.stderr
    header, *rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert header == ["doc_id", "text", "source_row", "url", "timestamp"]
    expected = expected_rows(tricky_run)
    assert [r[1] for r in rows] == TEXTS
    assert [int(r[2]) for r in rows] == [e["source_row"] for e in expected]
    assert [r[4] for r in rows] == [e["timestamp"] or "" for e in expected]


def test_every_row_for_machines_and_fifty_for_people(tricky_run):
    query = "SELECT range AS i FROM range(120)"
    assert len(thresher_sql(str(tricky_run), query, "-o", "jsonl").stdout.splitlines()) == 120
    assert thresher_sql(str(tricky_run), query, "-o", "csv", "--max-rows", "7").stdout.splitlines() == \
        ["i", *map(str, range(7))]
    table = thresher_sql(str(tricky_run), query)
    assert table.returncode == 0 and "first 50 rows shown" in table.stdout


def test_types_are_written_exactly(tricky_run):
    query = ("SELECT 'a\\x00b'::BLOB AS b, 12345678901234567.89::DECIMAL(20,2) AS d, 'nan'::DOUBLE AS f, "
             "'-inf'::DOUBLE AS g, 0.1::DOUBLE AS h, [1, NULL] AS l, {'k': 'v', 'n': 2} AS s, true AS t, "
             "DATE '2020-01-02' AS dt, 9007199254740993::BIGINT AS big")
    result = thresher_sql(str(tricky_run), query, "-o", "json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row == {"b": base64.b64encode(b"a\x00b").decode(), "d": "12345678901234567.89", "f": "NaN",
                   "g": "-Infinity", "h": 0.1, "l": [1, None], "s": {"k": "v", "n": 2}, "t": True,
                   "dt": "2020-01-02", "big": 9007199254740993}
    [line] = list(csv.DictReader(io.StringIO(thresher_sql(str(tricky_run), query, "-o", "csv").stdout)))
    assert line["t"] == "true" and line["l"] == "[1, null]" and line["f"] == "NaN" and line["h"] == "0.1"


def test_repeated_column_names_are_refused_for_json(tricky_run):
    result = thresher_sql(str(tricky_run), "SELECT 1 AS a, 2 AS a", "-o", "jsonl")
    assert result.returncode == 2 and "'a'" in result.stderr and result.stdout == ""


def test_out_writes_files_atomically(tricky_run, tmp_path):
    expected = expected_rows(tricky_run)
    parquet = tmp_path / "out" / "docs.parquet"
    result = thresher_sql(str(tricky_run), QUERY, "-o", "parquet", "--out", str(parquet))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    written = pq.read_table(parquet)
    assert written.column("text").to_pylist() == TEXTS
    assert written.schema.field("source_row").type == pa.int64()
    jsonl = tmp_path / "docs.jsonl"
    assert thresher_sql(str(tricky_run), QUERY, "-o", "jsonl", "--out", str(jsonl)).returncode == 0
    assert [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()] == expected
    # A query that fails half-way (the cast breaks on the first text) leaves no file, not a partial one.
    broken = tmp_path / "broken.csv"
    failed = thresher_sql(str(tricky_run), "SELECT source_row::VARCHAR::INTEGER + text::INTEGER AS x "
                          "FROM documents", "-o", "csv", "--out", str(broken))
    assert failed.returncode == 2 and "error" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "out", "run"]
    assert sorted(p.name for p in parquet.parent.iterdir()) == ["docs.parquet"]


@pytest.mark.parametrize("args, message", [
    (["-o", "parquet"], "--out"),
    (["--out", "x.csv"], "-o FORMAT"),
    (["-o", "xml"], "xml"),
])
def test_bad_output_options_fail_early(tricky_run, args, message):
    result = thresher_sql(str(tricky_run), "SELECT 1", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_shell_dot_commands_never_swallow_the_next_statement(tricky_run):
    script = ("SELECT count(*) AS n FROM documents;\n"
              ".tables\n"
              ".mode jsonl\n"
              "SELECT count(*) AS n\n FROM documents;\n"
              ".tables\n"
              ".schema documents\n"
              ".schema nowhere\n"
              ".bogus\n"
              "SELECT text FROM documents ORDER BY source_row LIMIT 1;\n"
              ".mode csv\n"
              "SELECT source_row FROM documents ORDER BY source_row LIMIT 2\n")  # no ';' before EOF
    result = thresher_sql(str(tricky_run), stdin=script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    jsonl_start = lines.index('{"n": 5}')  # the statement after `.mode` ran, in the new mode
    assert any("5" in line for line in lines[:jsonl_start])  # and the first one as a table
    objects = [json.loads(line) for line in lines[jsonl_start:-3]]

    from thresher.storage.catalog import open_catalog

    with open_catalog(RunDir(tricky_run)) as con:
        views = con.sql("SELECT name, description FROM thresher_views ORDER BY position").fetchall()
        relation = con.sql("SELECT * FROM documents")
        columns = [{"view": "documents", "column": c, "type": str(t)}
                   for c, t in zip(relation.columns, relation.types)]
    tables = [o for o in objects if set(o) == {"name", "description"}]
    assert [(o["name"], o["description"]) for o in tables] == views  # each view once, in order
    assert [o for o in objects if set(o) == {"view", "column", "type"}] == columns
    assert {"text": TEXTS[0]} in objects
    assert lines[-3:] == ["source_row", "0", "1"]
    assert "nowhere" in result.stderr and ".bogus" in result.stderr
    assert "thresher>" not in result.stdout  # piped statements: results only, no prompts


def test_a_reader_that_stops_early_gets_no_traceback(tricky_run):
    env = {**os.environ, "COLUMNS": "40"}
    with subprocess.Popen([SCRIPT, "sql", str(tricky_run), "SELECT range FROM range(2000000)", "-o", "csv"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        assert process.stdout.readline() == b"range\n"
        process.stdout.close()  # as `| head -1` does
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
