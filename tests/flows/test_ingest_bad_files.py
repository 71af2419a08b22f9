"""The ingest flow with real broken files among good ones: every bad file is one quarantine row with
its reason and size, the good files' rows all arrive, the counts reconcile, and only a run where no
file at all can be read stops (issue 14, item 3)."""

from __future__ import annotations

import gzip
import hashlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.corpora import c4_documents
from tests.storage.test_readers import corrupt_parquet_page, cut_parquet_footer, reads_any_file
from thresher.config import InputSpec
from thresher.schema import QuarantineReason
from thresher.storage.catalog import build_catalog, open_catalog
from thresher.storage.readers import InputError
from thresher.storage.run_dir import RunDir

ROOT = reads_any_file()  # then no chmod makes a file unreadable, and the permission case is left out


def write_jsonl_gz(path: Path, docs: list[dict]) -> Path:
    import orjson

    path.write_bytes(gzip.compress(b"".join(orjson.dumps(d) + b"\n" for d in docs), mtime=0))
    return path


def broken_corpus(directory: Path, docs: list[dict]) -> dict[str, str]:
    """Good and bad files from the C4 sample; returns the reason each bad file is quarantined for."""
    directory.mkdir()
    write_jsonl_gz(directory / "web-a.jsonl.gz", docs[:100])
    pq.write_table(pa.Table.from_pylist(docs[100:]), directory / "web-b.parquet")
    cut_parquet_footer(directory / "no-footer.parquet", pa.Table.from_pylist(docs[:40]))
    (directory / "plain.jsonl.gz").write_text('{"text": "this .gz was never compressed"}\n')
    (directory / "garbage.jsonl.zst").write_bytes(hashlib.sha256(b"zstd").digest() * 32)
    write_jsonl_gz(directory / "vanishing.jsonl.gz", docs[:30])
    reasons = {"no-footer.parquet": "unreadable_file", "plain.jsonl.gz": "unreadable_file",
               "garbage.jsonl.zst": "unreadable_file", "vanishing.jsonl.gz": "file_vanished"}
    if not ROOT:
        write_jsonl_gz(directory / "locked.jsonl.gz", docs[:20]).chmod(0)
        reasons["locked.jsonl.gz"] = "permission_denied"
    return reasons


def vanish_after_planning(monkeypatch, path: Path) -> None:
    """Delete `path` once the flow has planned its shards, before any shard is read."""
    import thresher.flows.ingest as ingest_module

    plan = ingest_module.plan_shards

    def plan_then_delete(inputs):
        planned = plan(inputs)
        path.unlink()
        return planned

    monkeypatch.setattr(ingest_module, "plan_shards", plan_then_delete)


def reconcile(run: RunDir) -> dict[str, int]:
    """Counts from the catalog, checked against each other: rows in = written + quarantined."""
    build_catalog(run)
    with open_catalog(run) as con:
        rows_in, written, quarantined = con.execute(
            "SELECT sum(rows_in), sum(rows_written), sum(rows_quarantined) FROM ingest_stats").fetchall()[0]
        assert rows_in == written + quarantined
        assert con.execute("SELECT count(*), count(DISTINCT doc_id) FROM documents").fetchall() == [(written, written)]
        assert con.execute("SELECT sum(n_rows) FROM quarantine").fetchall() == [(quarantined,)]
    return {"rows_in": rows_in, "written": written, "quarantined": quarantined}


@pytest.fixture
def docs(sample_data) -> list[dict]:
    return c4_documents(sample_data)


def test_bad_files_are_quarantined_and_the_run_goes_on(prefect_harness, tmp_path, docs, monkeypatch):
    from thresher.flows.ingest import ingest_flow

    inputs = tmp_path / "inputs"
    reasons = broken_corpus(inputs, docs)
    corrupt_parquet_page(inputs / "rot.parquet", pa.Table.from_pylist(docs[:30]), rows_per_group=10)
    vanished = inputs / "vanishing.jsonl.gz"
    kept = vanished.read_bytes()
    vanish_after_planning(monkeypatch, vanished)
    run = RunDir(tmp_path / "run")

    result = ingest_flow(str(run.root), [InputSpec(paths=[str(inputs)])])

    assert result["files_quarantined"] == len(reasons)
    assert {Path(f["source"]).name: f["reason"] for f in result["quarantined_files"]} == reasons
    sizes = {Path(f["source"]).name: f["bytes"] for f in result["quarantined_files"]}
    assert sizes == {name: None if name == "vanishing.jsonl.gz" else (inputs / name).stat().st_size
                     for name in reasons}
    assert result["quarantine_reasons"]["unreadable_remainder"] == 1
    assert result["rows_in"] == result["rows_written"] + result["rows_quarantined"]

    counts = reconcile(run)
    assert counts["written"] == 200 + 10  # both good files whole, and rot.parquet up to its corrupt page
    with open_catalog(run) as con:
        by_source = dict(con.execute("SELECT source, count(*) FROM documents GROUP BY source").fetchall())
        assert by_source == {"web-a.jsonl.gz": 100, "web-b.parquet": 100, "rot.parquet": 10}
        texts = [t for (t,) in con.execute(
            "SELECT text FROM documents WHERE source <> 'rot.parquet' ORDER BY source, source_row").fetchall()]
        assert texts == [d["text"] for d in docs]  # web-a (docs 0-99) sorts before web-b (100-199)
        rows = con.execute("SELECT source, reason, n_rows, file_bytes, detail FROM quarantine "
                           "WHERE reason IN ('unreadable_file', 'file_vanished', 'permission_denied')").fetchall()
    assert {source: reason for source, reason, *_ in rows} == reasons
    for source, _reason, n_rows, file_bytes, detail in rows:
        assert n_rows == 1 and file_bytes == sizes[source] and source in detail
    assert run.read_manifest()["stages"]["ingest"]["files_quarantined"] == len(reasons)

    # Resumed with the vanished file back: it is read now. The files that failed for a passing reason
    # (vanished, and locked where it exists: still locked) are tried again, the rest served as stored.
    monkeypatch.undo()
    vanished.write_bytes(kept)
    again = ingest_flow(str(run.root), [InputSpec(paths=[str(inputs)])])
    assert again["files_quarantined"] == len(reasons) - 1
    retried = sum(reason in QuarantineReason.TRANSIENT for reason in reasons.values())
    assert again["shards_skipped"] == again["shards"] - retried
    counts = reconcile(run)
    assert counts["written"] == 200 + 10 + 30


def test_no_readable_input_at_all_stops_the_run(prefect_harness, tmp_path, docs):
    from thresher.flows.ingest import ingest_flow

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cut_parquet_footer(inputs / "no-footer.parquet", pa.Table.from_pylist(docs[:10]))
    (inputs / "plain.jsonl.gz").write_text('{"text": "not gzip"}\n')
    run = RunDir(tmp_path / "run")
    with pytest.raises(InputError, match="no readable input: all 2 input files were quarantined") as error:
        ingest_flow(str(run.root), [InputSpec(paths=[str(inputs)])])
    assert "no-footer.parquet (unreadable_file)" in str(error.value)
    # What could not be read is still on record, and reconciles.
    assert reconcile(run) == {"rows_in": 2, "written": 0, "quarantined": 2}


@pytest.mark.usefixtures("prefect_for_cli")
def test_thresher_ingest_reports_the_quarantined_files(tmp_path, docs):
    from typer.testing import CliRunner

    from thresher.cli import app

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_jsonl_gz(inputs / "web.jsonl.gz", docs[:50])
    (inputs / "plain.jsonl.gz").write_text('{"text": "not gzip"}\n')
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(tmp_path / "run"), str(inputs)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "quarantined files" in result.output
    # The path may fold over several lines of its cell (the console is as wide as it was at import);
    # the row's other cells are on its first line.
    assert "plain.jsonl.gz" in result.output.replace("│", "").replace("\n", "").replace(" ", "")
    assert any("unreadable_file" in line and "21" in line.split() for line in result.output.splitlines())

    (inputs / "web.jsonl.gz").unlink()
    failed = runner.invoke(app, ["ingest", str(tmp_path / "run2"), str(inputs)], env={"COLUMNS": "400"})
    assert failed.exit_code == 2
    assert "no readable input" in failed.output and Counter(failed.output.split())["Traceback"] == 0


@pytest.mark.usefixtures("prefect_for_cli")
def test_a_mostly_quarantined_file_warns_and_strict_fails_after_writing(tmp_path, docs):
    """Issue 16: a file whose 30 rows were all quarantined used to exit 0 without a word."""
    from typer.testing import CliRunner

    from thresher.cli import app

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_jsonl_gz(inputs / "web.jsonl.gz", docs[:20])
    (inputs / "broken.jsonl").write_text("".join("{not json\n" for _ in range(30)), encoding="utf-8")
    runner = CliRunner()
    warned = runner.invoke(app, ["ingest", str(tmp_path / "run"), str(inputs), "--format", "jsonl"],
                           env={"COLUMNS": "400"})
    assert warned.exit_code == 0, warned.output
    assert "files mostly quarantined" in warned.output
    assert "broken.jsonl" in warned.output.replace("│", "").replace("\n", "").replace(" ", "")
    assert any(line.split().count("30") == 2 for line in warned.output.splitlines())  # rows in, quarantined

    strict = runner.invoke(app, ["ingest", str(tmp_path / "strict"), str(inputs), "--format", "jsonl", "--strict"],
                           env={"COLUMNS": "400"})
    assert strict.exit_code == 2 and "strict ingest" in strict.output
    run = RunDir(tmp_path / "strict")
    assert run.read_manifest()["stages"]["ingest"]["status"] == "failed"
    with open_catalog(run) as con:  # everything was written before the failure
        assert con.execute("SELECT sum(n_rows) FROM quarantine").fetchall() == [(30,)]
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(20,)]
