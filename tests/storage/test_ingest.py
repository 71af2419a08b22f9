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
