"""CSV/TSV and Arrow IPC inputs: sniffed by extension and columns, read in bounded batches, with
broken rows and damaged files quarantined, never dropped."""

from __future__ import annotations

import csv
import gzip
import io
import os

import pyarrow as pa
import pyarrow.feather as feather
import pytest

from tests.storage.test_readers import Read, read
from thresher.config import IngestConfig, InputSpec
from thresher.schema import make_doc_id


def csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_a_gzipped_c4_csv_streams_in_bounded_batches(tmp_path):
    rows = [["text", "url", "timestamp", "lang"]]
    rows += [[f"Document {i},\nwith a quoted line break.", f"https://example.com/{i}", "2019-04-25T12:57:54Z", "007"]
             for i in range(25)]
    path = tmp_path / "c4.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes(rows), mtime=0))
    shard, result = read(path, IngestConfig(batch_rows=4))
    assert shard.format == "c4" and len(result.batches) >= 7
    got = result.rows()
    assert [r["source_row"] for r in got] == list(range(25))
    assert got[3]["text"] == "Document 3,\nwith a quoted line break." and got[3]["url"] == "https://example.com/3"
    assert got[3]["doc_id"] == make_doc_id(shard.fingerprint, 3)
    assert got[3]["timestamp"].isoformat() == "2019-04-25T12:57:54+00:00"
    assert got[3]["meta_json"] == '{"lang":"007"}'  # CSV has no types: a code stays a string


def test_a_broken_csv_row_is_quarantined_and_the_rows_keep_their_positions(tmp_path):
    good = csv_bytes([["text", "id"], ["alpha", "1"], ["beta", "2"]])
    path = tmp_path / "broken.csv"
    path.write_bytes(good + b"gamma,3,surplus\n" + b"delta,4\n" + b"bad \xff utf8,5\n" + b",6\nepsilon,7\n")
    shard, result = read(path)
    assert shard.format == "csv"
    assert [(r["source_row"], r["text"]) for r in result.rows()] == [(0, "alpha"), (1, "beta"), (3, "delta"),
                                                                      (6, "epsilon")]
    quarantined = {r["source_row"]: (r["reason"], r["raw"]) for r in result.quarantined()}
    assert quarantined == {2: ("invalid_record", b"gamma,3,surplus"), 4: ("invalid_utf8", b"bad \xff utf8\x1f5"),
                           5: ("empty_text", b"")}
    assert result.rows_in == 7


def test_tsv_with_instruction_columns_is_an_instruction_set(tmp_path):
    path = tmp_path / "alpaca.tsv"
    path.write_bytes(csv_bytes([["instruction", "input", "output"], ["Add 2 and 3.", "", "5"],
                                ["Name a colour.", "", "Blue"], ["broken"]], delimiter="\t"))
    shard, result = read(path)
    assert (shard.format, shard.table) == ("alpaca", "instructions")
    assert [(r["source_row"], r["instruction"], r["output"]) for r in result.rows()] == [
        (0, "Add 2 and 3.", "5"), (1, "Name a colour.", "Blue")]
    assert result.reasons == {"invalid_record": 1}


def test_text_field_picks_the_column_and_a_missing_one_is_a_schema_mismatch(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(csv_bytes([["body", "stars"]] + [[f"review {i}", str(i % 5)] for i in range(9)]))
    _, result = read(path, text_field="body")
    assert [r["text"] for r in result.rows()][:2] == ["review 0", "review 1"]
    _, result = read(path)
    [row] = result.quarantined()
    assert (row["reason"], row["n_rows"]) == ("schema_mismatch", 9) and "'text' is missing" in row["detail"]


def arrow_table(n: int) -> pa.Table:
    return pa.table({"text": [f"arrow document {i}" for i in range(n)], "score": list(range(n))})


@pytest.mark.parametrize("name, write", [
    ("data.feather", lambda t, p: feather.write_feather(t, p, chunksize=10)),
    # `datasets.save_to_disk` writes .arrow files in the IPC stream format.
    ("data-00000-of-00001.arrow", lambda t, p: _write_stream(t, p)),
])
def test_arrow_ipc_file_and_stream_read_batch_by_batch(tmp_path, name, write):
    path = tmp_path / name
    write(arrow_table(35), str(path))
    shard, result = read(path, IngestConfig(batch_rows=4))
    assert shard.format == "arrow"
    assert [r["source_row"] for r in result.rows()] == list(range(35))
    assert result.rows()[34]["text"] == "arrow document 34" and result.rows()[34]["meta_json"] == '{"score":34}'
    assert max(b.records.num_rows for b in result.batches) == 4


def _write_stream(table: pa.Table, path: str) -> None:
    with pa.ipc.new_stream(path, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=10):
            writer.write_batch(batch)


def test_a_truncated_arrow_file_keeps_the_batches_before_the_cut(tmp_path):
    path = tmp_path / "cut.arrow"
    feather.write_feather(arrow_table(40), str(path), chunksize=10, compression="uncompressed")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    _, result = read(path)
    kept = result.records.num_rows
    assert kept in (10, 20)
    assert [r["source_row"] for r in result.rows()] == list(range(kept))
    [row] = result.quarantined()
    assert row["reason"] == "unreadable_remainder" and row["source_row"] == kept


def test_a_file_that_is_not_arrow_is_one_unreadable_row(tmp_path):
    path = tmp_path / "junk.ipc"
    path.write_bytes(b"this is not an Arrow stream at all")
    shard, result = read(path)
    assert shard.problem is not None
    [row] = result.quarantined()
    assert row["reason"] == "unreadable_file" and "not an Arrow IPC file or stream" in row["detail"]


def test_a_datasets_save_to_disk_folder_reads_its_arrow_shards_and_skips_its_metadata(tmp_path):
    """`datasets.Dataset.save_to_disk` / `DatasetDict.save_to_disk` folders (what a user of `datasets`
    has): the Arrow shards are read as documents; state.json, dataset_info.json and dataset_dict.json
    describe the data and are listed as skipped, never quarantined as bad JSON."""
    datasets = pytest.importorskip("datasets")
    from thresher.storage.formats import SKIP_DATASET_METADATA, expand_inputs
    from thresher.storage.readers import discover_shards

    texts = [f"saved document {i}" for i in range(30)]
    split = datasets.Dataset.from_dict({"text": texts, "url": [f"https://example.org/{i}" for i in range(30)]})
    datasets.DatasetDict({"train": split, "test": split.select(range(5))}).save_to_disk(str(tmp_path / "saved"))
    spec = InputSpec(paths=[str(tmp_path / "saved")])
    paths, skipped = expand_inputs(spec)
    assert paths and all(p.endswith(".arrow") for p in paths)
    assert sorted(os.path.basename(s.path) for s in skipped) == [
        "dataset_dict.json", "dataset_info.json", "dataset_info.json", "state.json", "state.json"]
    assert {s.reason for s in skipped} == {SKIP_DATASET_METADATA}
    rows = []
    for shard in discover_shards(spec):
        assert shard.format == "arrow" and shard.table == "documents"
        result = Read(shard, spec, IngestConfig())
        assert result.quarantined() == []
        rows += [r["text"] for r in result.rows()]
    assert sorted(rows) == sorted(texts + texts[:5])
    # A glob over the same folders reads the same shards and passes over the same metadata.
    globbed, skipped_by_glob = expand_inputs(InputSpec(paths=[str(tmp_path / "saved" / "**" / "*")]))
    assert globbed == paths and {s.reason for s in skipped_by_glob} == {SKIP_DATASET_METADATA}
