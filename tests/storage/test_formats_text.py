"""Plain-text inputs: one document per file (default) or per non-blank line, found by the sniffer,
with every bad file or line quarantined with its reason."""

from __future__ import annotations

import gzip

from tests.storage.test_readers import Read, read
from thresher.config import IngestConfig, InputSpec
from thresher.schema import make_doc_id
from thresher.storage.readers import discover_shards


def LinesSpec(**fields) -> InputSpec:  # noqa: N802 (reads like the spec it builds)
    return InputSpec(text_mode="lines", **fields)


def test_a_directory_of_text_files_is_one_document_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("First document.\nSecond line of it.\n", encoding="utf-8")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress("Zweites Dokument: grün.".encode(), mtime=0))
    (tmp_path / ".hidden.txt").write_text("skipped")
    shards = discover_shards(InputSpec(paths=[str(tmp_path)]))
    assert [(s.format, s.table) for s in shards] == [("text", "documents")] * 2
    texts = []
    for shard in shards:
        result = Read(shard, InputSpec(paths=[shard.path]), IngestConfig())
        [row] = result.rows()
        assert row["doc_id"] == make_doc_id(shard.fingerprint, 0) and row["source_row"] == 0
        texts.append(row["text"])
    assert texts == ["First document.\nSecond line of it.\n", "Zweites Dokument: grün."]


def test_bad_text_files_are_quarantined_with_their_reason(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "big.txt").write_text("x" * 5000)
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(b"a document " * 1000, mtime=0)[:-40])
    ingest = IngestConfig(max_doc_bytes=4096)
    expected = {"empty.txt": "empty_text", "latin1.txt": "invalid_utf8", "big.txt": "oversized",
                "cut.txt.gz": "truncated_archive"}
    for name, reason in expected.items():
        _, result = read(tmp_path / name, ingest)
        assert result.records.num_rows == 0, name
        [row] = result.quarantined()
        assert (row["reason"], row["n_rows"]) == (reason, 1), (name, row["detail"])
    _, big = read(tmp_path / "big.txt", ingest)
    assert "file of 5000 bytes" in big.quarantined()[0]["detail"]


def test_lines_mode_reads_one_document_per_non_blank_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"\xef\xbb\xbffirst line\r\n\n  \nsecond line\nbad \xff byte\nthird\n")
    spec = LinesSpec(paths=[str(path)])
    [shard] = discover_shards(spec)
    result = Read(shard, spec, IngestConfig())
    assert [(r["source_row"], r["text"]) for r in result.rows()] == [(0, "first line"), (1, "second line"),
                                                                      (3, "third")]
    [bad] = result.quarantined()
    assert (bad["source_row"], bad["reason"], bad["raw"]) == (2, "invalid_utf8", b"bad \xff byte\n")
    # The default reads the same file as one document.
    assert Read(shard, InputSpec(paths=[str(path)]), IngestConfig()).reasons == {"invalid_utf8": 1}


def test_lines_mode_keeps_the_lines_before_a_cut_archive(tmp_path):
    path = tmp_path / "lines.txt.gz"
    payload = b"".join(b"line number %d of the corpus\n" % i for i in range(2000))
    path.write_bytes(gzip.compress(payload, mtime=0)[: len(gzip.compress(payload, mtime=0)) // 2])
    spec = LinesSpec(paths=[str(path)])
    [shard] = discover_shards(spec)
    result = Read(shard, spec, IngestConfig())
    kept = result.records.num_rows
    assert 0 < kept < 2000
    assert [r["text"] for r in result.rows()] == [f"line number {i} of the corpus" for i in range(kept)]
    [cut] = result.quarantined()
    assert cut["reason"] == "truncated_archive" and f"at row {kept} " in cut["detail"]


def test_a_txt_file_named_with_a_json_preset_is_still_json_lines(tmp_path):
    path = tmp_path / "records.txt"
    path.write_text('{"text": "a JSON record"}\n')
    shard, result = read(path, format="jsonl")
    assert shard.format == "jsonl" and [r["text"] for r in result.rows()] == ["a JSON record"]
    shard, result = read(path)
    assert shard.format == "text" and [r["text"] for r in result.rows()] == ['{"text": "a JSON record"}\n']
