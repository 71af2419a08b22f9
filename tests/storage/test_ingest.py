from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from tests.storage.test_readers import build_bad_input_corpus
from thresher.config import IngestConfig, InputSpec
from thresher.storage.catalog import build_catalog, open_catalog
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import discover_shards
from thresher.storage.run_dir import RunDir


def test_bad_input_corpus_reconciles_in_stats_tables_and_catalog(tmp_path):
    corpus, ingest, expected, written = build_bad_input_corpus(tmp_path)
    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(corpus)])
    stats = [ingest_shard(run, shard, spec, ingest) for shard in discover_shards(spec)]

    by_file = {Path(s["source"]).name: s for s in stats}
    assert {name: s["rows_written"] for name, s in by_file.items()} == written
    for s in stats:
        assert s["rows_in"] == s["rows_written"] + s["rows_quarantined"]
        assert not s["skipped"]
    totals = Counter()
    for s in stats:
        totals.update(s["quarantine_reasons"])
    assert totals == expected

    # The quarantine table holds exactly what the stats count, with the evidence.
    table = pq.read_table(run.table_dir("quarantine")).to_pydict()
    from_table = Counter()
    for reason, n in zip(table["reason"], table["n_rows"]):
        from_table[reason] += n
    assert from_table == expected

    build_catalog(run)
    with open_catalog(run) as con:
        rows = con.execute(
            "SELECT sum(rows_in), sum(rows_written), sum(rows_quarantined) FROM ingest_stats").fetchall()[0]
        kept = con.execute("SELECT (SELECT count(*) FROM documents) + (SELECT count(*) FROM instructions)").fetchall()
        assert rows[0] == rows[1] + rows[2] and kept == [(rows[1],)]
        assert con.execute("SELECT sum(n_rows) FROM quarantine").fetchall() == [(rows[2],)]


def test_second_ingest_skips_and_new_parameters_redo(tmp_path, sample_data):
    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(sample_data / "c4_sample.jsonl")], format="c4")
    (shard,) = discover_shards(spec)
    first = ingest_shard(run, shard, spec, IngestConfig())
    assert first["rows_written"] == 200 and not first["skipped"]
    part = run.table_part("documents", shard.shard_id)
    before = pq.read_table(part)
    assert ingest_shard(run, shard, spec, IngestConfig())["skipped"]

    tight = ingest_shard(run, shard, spec, IngestConfig(max_doc_bytes=2000))
    assert not tight["skipped"]
    assert tight["rows_quarantined"] == tight["quarantine_reasons"]["oversized"] > 0
    assert pq.read_table(part).num_rows == 200 - tight["rows_quarantined"]
    again = ingest_shard(run, shard, spec, IngestConfig())
    assert not again["skipped"] and pq.read_table(part).equals(before)


def test_catalog_sees_no_half_written_shard(tmp_path, sample_data):
    """A shard killed mid-write leaves only a temp file, which no catalog view reads."""
    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(sample_data / "c4_sample.jsonl")], format="c4")
    (shard,) = discover_shards(spec)
    ingest_shard(run, shard, spec, IngestConfig())
    (run.table_dir("documents") / "part-x.parquet.tmp-123").write_bytes(b"PAR1 half")
    build_catalog(run)
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(200,)]


def test_unreadable_files_are_named_in_their_stats(tmp_path):
    corpus, ingest, _expected, _written = build_bad_input_corpus(tmp_path)
    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(corpus)])
    stats = {Path(s["source"]).name: s for s in (ingest_shard(run, sh, spec, ingest) for sh in discover_shards(spec))}
    named = {name: s["file_quarantined"] for name, s in stats.items() if s["file_quarantined"]}
    assert named == {"no-footer.parquet": "unreadable_file", "plain.jsonl.gz": "unreadable_file",
                     "notes.json": "unknown_format"}
    for name in named:
        assert (stats[name]["rows_in"], stats[name]["rows_quarantined"]) == (1, 1)
        assert stats[name]["bytes_in"] == (corpus / name).stat().st_size
    # A file read up to a corrupt page is not a quarantined file: its first rows are in the run.
    assert stats["rot.parquet"]["file_quarantined"] is None and stats["rot.parquet"]["rows_written"] == 7


def quarantine_rows(run: RunDir) -> list[dict]:
    return pq.read_table(run.table_dir("quarantine")).to_pylist()


def test_a_vanished_file_is_read_when_it_is_back(tmp_path, sample_data):
    """A file gone between planning and reading is quarantined; the same shard, resumed once the
    file is back, is read (not served from the first attempt), and replaces its quarantine row."""
    run = RunDir(tmp_path / "run")
    run.init()
    source = tmp_path / "c4.jsonl"
    source.write_bytes((sample_data / "c4_sample.jsonl").read_bytes())
    spec = InputSpec(paths=[str(source)], format="c4")
    (shard,) = discover_shards(spec)
    moved = source.rename(tmp_path / "elsewhere.jsonl")
    first = ingest_shard(run, shard, spec, IngestConfig())
    assert (first["file_quarantined"], first["bytes_in"], first["rows_in"], first["rows_written"]) == (
        "file_vanished", None, 1, 0)
    [row] = quarantine_rows(run)
    assert (row["reason"], row["file_bytes"], row["source"]) == ("file_vanished", None, "c4.jsonl")

    moved.rename(source)
    again = ingest_shard(run, shard, spec, IngestConfig())
    assert not again["skipped"] and again["file_quarantined"] is None
    assert (again["rows_in"], again["rows_written"]) == (200, 200) and quarantine_rows(run) == []
    assert ingest_shard(run, shard, spec, IngestConfig())["skipped"]


def test_a_file_unreadable_when_planned_is_replaced_once_readable(tmp_path, sample_data, monkeypatch):
    """Permission denied while planning gives a shard named by path (its content cannot be
    fingerprinted). Once the file is readable it plans under its content fingerprint, and the
    path-named shard's outputs are retired so the file is not counted twice. Root reads any file,
    so the PermissionError a non-root user gets from the fingerprinting read is raised here."""
    from thresher.storage import formats
    from thresher.storage.ingest import retire_superseded

    run = RunDir(tmp_path / "run")
    run.init()
    source = tmp_path / "c4.jsonl"
    source.write_bytes((sample_data / "c4_sample.jsonl").read_bytes())
    spec = InputSpec(paths=[str(source)], format="c4")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(formats, "file_fingerprint", denied)
        (locked,) = discover_shards(spec)
    assert locked.problem.reason == "permission_denied"
    stats = ingest_shard(run, locked, spec, IngestConfig())
    assert stats["file_quarantined"] == "permission_denied" and stats["rows_in"] == 1

    (readable,) = discover_shards(spec)
    assert readable.shard_id != locked.shard_id
    assert retire_superseded(run, [readable]) == [locked.shard_id]
    assert retire_superseded(run, [readable]) == []
    ingest_shard(run, readable, spec, IngestConfig())
    build_catalog(run)
    with open_catalog(run) as con:
        assert con.execute("SELECT sum(rows_in), sum(rows_written) FROM ingest_stats").fetchall() == [(200, 200)]
        assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]
