import shutil

import duckdb
import pyarrow as pa
import pytest

from thresher.schema import DOCUMENT_SCHEMA, make_doc_id
from thresher.storage.catalog import build_catalog, latest_score_keys, open_catalog
from thresher.storage.parquet_io import write_table_atomic
from thresher.storage.run_dir import RunDir

SCORE_V1 = pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field("toy_len", pa.int64())])
SCORE_V2 = pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field("toy_len", pa.int64()),
                      pa.field("toy_upper", pa.int64())])


def documents(texts, fingerprint):
    ids = [make_doc_id(fingerprint, i) for i in range(len(texts))]
    n = len(texts)
    return ids, pa.RecordBatch.from_arrays(
        [pa.array(ids), pa.array(texts, pa.large_string()), pa.array(["s.jsonl"] * n),
         pa.array(range(n), pa.int64()), pa.array([None] * n, pa.string()),
         pa.array([None] * n, pa.timestamp("us", tz="UTC")), pa.array([None] * n, pa.string())],
        schema=DOCUMENT_SCHEMA,
    )


@pytest.fixture
def run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.init(seed=3)
    for shard, texts in (("a", ["one", "two two"]), ("b", ["THREE three three"])):
        ids, batch = documents(texts, shard * 32)
        write_table_atomic(run.table_part("documents", shard), [batch], DOCUMENT_SCHEMA)
        lengths = pa.array([len(t) for t in texts], pa.int64())
        write_table_atomic(run.score_part("toy@1", shard),
                           [pa.RecordBatch.from_arrays([pa.array(ids), lengths], schema=SCORE_V1)], SCORE_V1)
        uppers = pa.array([sum(c.isupper() for c in t) for t in texts], pa.int64())
        write_table_atomic(run.score_part("toy@2", shard),
                           [pa.RecordBatch.from_arrays([pa.array(ids), lengths, uppers], schema=SCORE_V2)],
                           SCORE_V2)
    build_catalog(run)
    return run


def test_joined_view_uses_newest_scorer_version(run):
    assert latest_score_keys(run) == ["toy@2"]
    with open_catalog(run) as con:
        rows = con.sql("SELECT text, toy_len, toy_upper FROM documents_scored ORDER BY toy_len").fetchall()
        assert rows == [("one", 3, 0), ("two two", 7, 0), ("THREE three three", 17, 5)]
        assert con.execute("SELECT count(*) FROM score_toy_v1").fetchall() == [(3,)]
        names = {r[0] for r in con.sql("SELECT name FROM thresher_views").fetchall()}
        assert {"documents", "score_toy", "score_toy_v1", "score_toy_v2", "documents_scored"} <= names


def test_catalog_is_read_only_for_readers(run):
    with open_catalog(run) as con:
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE sneaky AS SELECT 1")


def test_run_directory_still_works_after_a_move(run, tmp_path):
    moved = RunDir(shutil.move(str(run.root), str(tmp_path / "elsewhere")))
    with open_catalog(moved) as con:
        assert con.execute("SELECT count(*) FROM documents_scored WHERE toy_len > 3").fetchall() == [(2,)]


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="thresher ingest"):
        open_catalog(RunDir(tmp_path))


def test_stage_tables_become_views(run):
    edges = pa.table({"a": ["x"], "b": ["y"]})
    write_table_atomic(run.root / "dedup" / "edges" / "part-a.parquet", edges.to_batches(), edges.schema)
    build_catalog(run)
    with open_catalog(run) as con:
        assert con.execute("SELECT a, b FROM dedup_edges").fetchall() == [("x", "y")]


def test_read_only_catalog_cannot_touch_files_outside_the_run(run, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n")
    with open_catalog(run) as con:
        for statement in (f"SELECT * FROM read_csv('{outside}')",
                          f"COPY (SELECT 1) TO '{tmp_path / 'leak.csv'}'",
                          "SET enable_external_access = true"):
            with pytest.raises(duckdb.Error):
                con.execute(statement).fetchall()
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
    assert not (tmp_path / "leak.csv").exists()


def test_several_sandboxed_readers_at_once_and_no_way_out(run):
    with open_catalog(run) as first, open_catalog(run) as second:
        assert first.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
        assert second.execute("SELECT count(*) FROM documents_scored").fetchall() == [(3,)]
        for statement in ("SET enable_external_access = true", "RESET enable_external_access",
                          "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.Error):
                second.execute(statement).fetchall()
