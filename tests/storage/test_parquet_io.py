import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key, write_json_atomic

SCHEMA = pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field("x", pa.int64())])


def batch(ids):
    return pa.RecordBatch.from_arrays([pa.array(ids), pa.array(range(len(ids)), pa.int64())], schema=SCHEMA)


def test_file_appears_only_when_closed_and_carries_cache_key(tmp_path):
    path = tmp_path / "t" / "part-a.parquet"
    writer = AtomicParquetWriter(path, SCHEMA, cache_key="k1")
    writer.write(batch(["a", "b"]))
    assert not path.exists()
    writer.close()
    assert pq.read_table(path).column("doc_id").to_pylist() == ["a", "b"]
    assert read_cache_key(path) == "k1"
    assert [p.name for p in path.parent.iterdir()] == ["part-a.parquet"]


def test_failure_inside_the_writer_leaves_nothing(tmp_path):
    path = tmp_path / "part-a.parquet"
    with pytest.raises(RuntimeError):
        with AtomicParquetWriter(path, SCHEMA) as writer:
            writer.write(batch(["a"]))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_batch_with_another_schema_is_refused(tmp_path):
    other = pa.record_batch([pa.array([1])], names=["doc_id"])
    with AtomicParquetWriter(tmp_path / "p.parquet", SCHEMA) as writer:
        with pytest.raises(ValueError, match="schema"):
            writer.write(other)


def test_cache_key_of_missing_or_foreign_file_is_none(tmp_path):
    assert read_cache_key(tmp_path / "missing.parquet") is None
    pq.write_table(pa.table({"a": [1]}), tmp_path / "foreign.parquet")
    assert read_cache_key(tmp_path / "foreign.parquet") is None
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert read_cache_key(tmp_path / "junk.parquet") is None


def test_json_written_atomically(tmp_path):
    write_json_atomic(tmp_path / "s" / "x.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "s" / "x.json").read_text().startswith('{\n  "a"')
    assert os.listdir(tmp_path / "s") == ["x.json"]


def test_temp_file_of_a_killed_writer_is_cleared_by_the_next(tmp_path):
    path = tmp_path / "part-a.parquet"
    (tmp_path / "part-a.parquet.tmp-99999").write_bytes(b"half a file")
    with AtomicParquetWriter(path, SCHEMA) as writer:
        writer.write(batch(["a"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-a.parquet"]
