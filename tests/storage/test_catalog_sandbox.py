"""Issue 14, item 1: every reader of a run is read-only, and opening a run directory someone else
wrote executes nothing stored in it. Each escape found by hand is a regression test here."""

import os

import duckdb
import pytest
from typer.testing import CliRunner

from thresher.cli import app
from thresher.storage.catalog import build_catalog, open_catalog
from thresher.storage.sql import require_read_only

from .test_catalog import run  # noqa: F401  (the two-shard run with toy scores)


def run_files(run) -> set[str]:  # noqa: F811
    return {str(p.relative_to(run.root)) for p in run.root.rglob("*")}


def test_copy_into_the_run_by_absolute_path_is_refused(run):  # noqa: F811
    target = run.table_part("documents", "evil")
    before = run_files(run)
    with open_catalog(run) as con:
        with pytest.raises(duckdb.PermissionException, match="read-only: COPY"):
            con.execute(f"COPY (SELECT * FROM documents LIMIT 2) TO '{target}'")
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
    assert not target.exists() and run_files(run) == before


ATTEMPTS = {
    "COPY": "COPY (SELECT 1) TO '{root}/x.csv'",
    "COPY relative": "COPY (SELECT 1) TO 'x.csv'",
    "EXPORT": "EXPORT DATABASE '{root}/exported'",
    "ATTACH": "ATTACH '{root}/new.duckdb' AS other",
    "INSTALL": "INSTALL httpfs",
    "LOAD": "LOAD json",
    "SET": "SET enable_external_access = true",
    "SET allowed_directories": "SET allowed_directories = ['/']",
    "RESET": "RESET lock_configuration",
    "SET VARIABLE": "SET VARIABLE x = 1",
    "CREATE": "CREATE TABLE sneaky AS SELECT 1",
    "CREATE SECRET": "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
    "CREATE MACRO": "CREATE MACRO m(a) AS a",
    "INSERT": "INSERT INTO thresher_views VALUES (99, 'x', 'x', 'SELECT 1')",
    "UPDATE": "UPDATE thresher_views SET name = 'x'",
    "DELETE": "DELETE FROM thresher_views",
    "DROP": "DROP VIEW documents",
    "ALTER": "ALTER VIEW documents RENAME TO docs",
    "CALL checkpoint": "CALL checkpoint()",
    "CHECKPOINT": "CHECKPOINT",
    "PRAGMA": "PRAGMA enable_profiling",
    "EXPLAIN ANALYZE COPY": "EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/explained.csv'",
    "DETACH": "DETACH memory",
    "USE": "USE memory",
    "second statement": "SELECT 1; COPY (SELECT 1) TO '{root}/second.csv'",
    "after a comment": "/* harmless */ COPY (SELECT 1) TO '{root}/commented.csv'",
    "PIVOT": "PIVOT (SELECT 1 AS a) ON a",
}


@pytest.mark.parametrize("kind", sorted(ATTEMPTS))
def test_every_statement_that_is_not_a_read_is_refused(run, kind):  # noqa: F811
    before = run_files(run)
    with open_catalog(run) as con:
        with pytest.raises(duckdb.PermissionException, match="read-only"):
            con.sql(ATTEMPTS[kind].format(root=run.root))
        # the connection is still usable and unchanged afterwards
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
    assert run_files(run) == before


@pytest.mark.parametrize("sql", ["SELECT 1", "FROM documents", "DESCRIBE documents", "SHOW TABLES",
                                 "SUMMARIZE documents", "EXPLAIN SELECT * FROM documents",
                                 "EXPLAIN ANALYZE SELECT count(*) FROM documents", "-- note\nSELECT 2",
                                 "WITH d AS (SELECT * FROM documents) SELECT count(*) FROM d"])
def test_reads_still_work(run, sql):  # noqa: F811
    require_read_only(sql)
    with open_catalog(run) as con:
        assert con.sql(sql).fetchall() is not None


def test_files_outside_the_run_cannot_be_read(run, tmp_path):  # noqa: F811
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n", encoding="utf-8")
    with open_catalog(run) as con:
        for sql in (f"SELECT * FROM read_csv('{outside}')", f"SELECT * FROM read_csv('{run.root}/../secret.csv')"):
            with pytest.raises(duckdb.PermissionException):
                con.sql(sql).fetchall()


def test_a_tampered_catalog_file_is_never_executed(run, tmp_path):  # noqa: F811
    """The stored view definitions (and any view in catalog.duckdb) used to be re-run on open."""
    marker = tmp_path / "pwned.csv"
    con = duckdb.connect(str(run.catalog_path))
    con.execute("UPDATE thresher_views SET definition = ? WHERE name = 'documents'",
                [f"SELECT 1 AS x; COPY (SELECT 42) TO '{marker}'; SELECT 1"])
    con.execute("CREATE OR REPLACE VIEW documents AS SELECT * FROM read_text('/etc/hostname')")
    con.close()
    with open_catalog(run) as reader:
        assert reader.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
        definition = reader.execute("SELECT definition FROM thresher_views WHERE name = 'documents'").fetchall()
        parts = f"{run.root}/documents/part-*.parquet"
        assert definition == [(f"SELECT * FROM read_parquet('{parts}', union_by_name = true)",)]
    assert not marker.exists()
    # a rebuild replaces the tampered file without opening it
    build_catalog(run)
    check = duckdb.connect(str(run.catalog_path), read_only=True)
    assert "COPY" not in str(check.execute("SELECT definition FROM thresher_views").fetchall())
    check.close()
    assert not marker.exists()


def test_odd_names_and_symlinks_in_a_run_are_left_out(run, tmp_path):  # noqa: F811
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "part-x.parquet").write_bytes(run.table_part("documents", "a").read_bytes())
    (run.root / "selections").mkdir()
    os.symlink(outside, run.root / "selections" / "linked")
    injected = run.root / "dedup" / "x'), read_csv('etc"
    injected.mkdir(parents=True)
    (injected / "part-a.parquet").write_bytes(run.table_part("documents", "a").read_bytes())
    build_catalog(run)
    with open_catalog(run) as con:
        names = {n for (n,) in con.execute("SELECT name FROM thresher_views").fetchall()}
    assert "selections_linked" not in names and not any(n.startswith("dedup_") for n in names)
    assert "documents" in names


def test_an_open_reader_does_not_block_a_catalog_rebuild(run):  # noqa: F811
    with open_catalog(run) as first, open_catalog(run) as second:
        build_catalog(run)  # used to fail on the file lock a reader held
        assert first.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
        assert second.execute("SELECT count(*) FROM score_toy").fetchall() == [(3,)]


def test_the_sql_command_refuses_writes_with_a_clear_error(run):  # noqa: F811
    target = run.table_part("documents", "evil")
    result = CliRunner().invoke(app, ["sql", str(run.root), f"COPY (SELECT * FROM documents) TO '{target}'"])
    assert result.exit_code == 2 and "read-only" in result.output
    assert not target.exists()


def test_a_catalog_build_killed_mid_way_leaves_nothing_behind(run):  # noqa: F811
    dead = [run.root / "catalog.duckdb.tmp-999999", run.root / "catalog.duckdb.tmp-999999.wal"]
    for path in dead:
        path.write_bytes(b"half a database")
    build_catalog(run)
    assert not any(path.exists() for path in dead)
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]
