"""Readers: discovery, every input format, quarantine reasons, stable ids and bounded batches."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tracemalloc
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from thresher.config import IngestConfig, InputSpec
from thresher.schema import (
    DOCUMENT_SCHEMA,
    INSTRUCTION_SCHEMA,
    QUARANTINE_SCHEMA,
    QuarantineReason,
    make_doc_id,
)
from thresher.storage.readers import (
    RAW_LIMIT,
    InputError,
    Shard,
    discover_shards,
    file_fingerprint,
    read_shard,
)

UTC = UTC


# ------------------------------------------------------------------------------------------
# helpers


def write_lines(path: Path, lines: list[dict | bytes]) -> Path:
    """Write records (dicts as JSON) one per line, compressed as the file name says."""
    payload = b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    elif path.name.endswith(".zst"):
        payload = zstandard.ZstdCompressor().compress(payload)
    path.write_bytes(payload)
    return path


def write_parquet(path: Path, table: pa.Table, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **kwargs)
    return path


class Read:
    """Everything read from one shard, with the per-batch invariants checked on the way."""

    def __init__(self, shard: Shard, spec: InputSpec, ingest: IngestConfig):
        schema = INSTRUCTION_SCHEMA if shard.table == "instructions" else DOCUMENT_SCHEMA
        self.batches = list(read_shard(shard, spec, ingest))
        for batch in self.batches:
            assert batch.records.schema.equals(schema, check_metadata=True)
            assert batch.quarantine.schema.equals(QUARANTINE_SCHEMA, check_metadata=True)
            quarantined = sum(batch.quarantine.column("n_rows").to_pylist())
            assert batch.rows_in == batch.records.num_rows + quarantined
            assert batch.records.num_rows + batch.quarantine.num_rows <= ingest.batch_rows
        self.records = pa.Table.from_batches([b.records for b in self.batches], schema=schema)
        self.quarantine = pa.Table.from_batches(
            [b.quarantine for b in self.batches], schema=QUARANTINE_SCHEMA
        )
        self.rows_in = sum(b.rows_in for b in self.batches)
        self.reasons: Counter[str] = Counter()
        for reason, n in zip(
            self.quarantine.column("reason").to_pylist(), self.quarantine.column("n_rows").to_pylist()
        ):
            self.reasons[reason] += n
        assert self.rows_in == self.records.num_rows + sum(self.reasons.values())

    def rows(self) -> list[dict]:
        return self.records.to_pylist()

    def quarantined(self) -> list[dict]:
        return self.quarantine.to_pylist()


def read(path: Path | str, ingest: IngestConfig | None = None, **spec_fields) -> tuple[Shard, Read]:
    spec = InputSpec(paths=[str(path)], **spec_fields)
    [shard] = discover_shards(spec)
    return shard, Read(shard, spec, ingest or IngestConfig())


def c4_record(i: int, **extra) -> dict:
    return {
        "text": f"Document number {i}. It has a sentence or two.",
        "url": f"https://example.org/{i}",
        "timestamp": "2019-04-25T12:57:54Z",
        **extra,
    }


# ------------------------------------------------------------------------------------------
# formats


def test_c4_json_gz_is_detected_and_typed(tmp_path):
    path = write_lines(
        tmp_path / "c4-train.00000-of-01024.json.gz",
        [c4_record(0), c4_record(1, lang="en"), c4_record(2, timestamp="2019-04-25T14:57:54+02:00")],
    )
    shard, result = read(path)
    assert shard.format == "c4" and shard.table == "documents"
    assert shard.path == str(path) and shard.shard_id == f"c4-train.00000-of-01024-{shard.fingerprint[:12]}"
    rows = result.rows()
    assert [r["source_row"] for r in rows] == [0, 1, 2]
    assert all(r["source"] == path.name for r in rows)
    assert rows[1]["url"] == "https://example.org/1"
    assert [r["timestamp"] for r in rows] == [datetime(2019, 4, 25, 12, 57, 54, tzinfo=UTC)] * 3
    assert [r["meta_json"] for r in rows] == [None, '{"lang":"en"}', None]
    assert rows[2]["doc_id"] == make_doc_id(shard.fingerprint, 2)


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz", "docs.jsonl.zst", "docs.json"])
def test_jsonl_in_every_compression(tmp_path, name):
    records = [{"text": f"text {i}", "id": i, "tags": ["a", i], "z": None, "a": 1.5} for i in range(30)]
    shard, result = read(write_lines(tmp_path / name, records))
    assert shard.format == "jsonl"
    rows = result.rows()
    assert [r["text"] for r in rows] == [f"text {i}" for i in range(30)]
    assert rows[3]["meta_json"] == '{"a":1.5,"id":3,"tags":["a",3],"z":null}'  # sorted keys
    assert rows[3]["url"] is None and rows[3]["timestamp"] is None


def test_jsonl_fields_from_the_spec(tmp_path):
    records = [{"body": "hello", "link": "https://a.b/", "when": "2020-01-02", "n": 1}]
    _, result = read(
        write_lines(tmp_path / "x.jsonl", records),
        text_field="body",
        url_field="link",
        timestamp_field="when",
    )
    [row] = result.rows()
    assert (row["text"], row["url"]) == ("hello", "https://a.b/")
    assert row["timestamp"] == datetime(2020, 1, 2, tzinfo=UTC)  # naive means UTC
    assert row["meta_json"] == '{"n":1}'


def test_unusable_url_and_timestamp_stay_in_meta(tmp_path):
    records = [c4_record(0, url=17, timestamp="last tuesday"), c4_record(1, timestamp=None)]
    _, result = read(write_lines(tmp_path / "c4.jsonl", records), format="c4")
    first, second = result.rows()
    assert first["url"] is None and first["timestamp"] is None
    assert json.loads(first["meta_json"]) == {"url": 17, "timestamp": "last tuesday"}
    assert second["timestamp"] is None and second["meta_json"] is None


def fineweb_table(n: int) -> pa.Table:
    return pa.table(
        {
            "text": [f"fineweb text {i}" for i in range(n)],
            "id": [f"<urn:uuid:{i}>" for i in range(n)],
            "dump": ["CC-MAIN-2013-20"] * n,
            "url": [f"http://x.org/{i}" for i in range(n)],
            "date": ["2013-05-18T05:48:54Z"] * n,
            "file_path": ["s3://commoncrawl/x.warc.gz"] * n,
            "language": ["en"] * n,
            "language_score": [0.97] * n,
            "token_count": list(range(n)),
        }
    )


def test_fineweb_parquet(tmp_path):
    shard, result = read(write_parquet(tmp_path / "000_00000.parquet", fineweb_table(50), row_group_size=16))
    assert shard.format == "fineweb"
    rows = result.rows()
    assert len(rows) == 50 and [r["source_row"] for r in rows] == list(range(50))
    assert rows[7]["url"] == "http://x.org/7"
    assert rows[7]["timestamp"] == datetime(2013, 5, 18, 5, 48, 54, tzinfo=UTC)
    meta = json.loads(rows[7]["meta_json"])
    assert meta["id"] == "<urn:uuid:7>" and meta["token_count"] == 7 and meta["language_score"] == 0.97
    assert set(meta) == {"id", "dump", "file_path", "language", "language_score", "token_count"}
    assert rows[7]["doc_id"] == make_doc_id(shard.fingerprint, 7)


@pytest.mark.parametrize(
    "timestamps",
    [
        pa.array([datetime(2023, 1, 1, 12)] * 3, pa.timestamp("s")),
        pa.array([datetime(2023, 1, 1, 12)] * 3, pa.timestamp("ns", tz="UTC")),
        pa.array(["2023-01-01T12:00:00Z", "2023-01-01T13:00:00+01:00", "2023-01-01 12:00:00"]),
    ],
    ids=["timestamp_s", "timestamp_ns_utc", "strings"],
)
def test_refinedweb_parquet(tmp_path, timestamps):
    table = pa.table(
        {
            "content": ["one", "two", "three"],
            "url": ["u1", "u2", "u3"],
            "timestamp": timestamps,
            "dump": ["d"] * 3,
        }
    )
    shard, result = read(write_parquet(tmp_path / "rw.parquet", table))
    assert shard.format == "refinedweb"
    rows = result.rows()
    assert [r["text"] for r in rows] == ["one", "two", "three"]
    assert [r["timestamp"] for r in rows] == [datetime(2023, 1, 1, 12, tzinfo=UTC)] * 3
    assert [r["meta_json"] for r in rows] == ['{"dump":"d"}'] * 3


def test_parquet_bad_timestamp_strings_go_to_meta(tmp_path):
    table = pa.table({"content": ["a", "b"], "url": ["u", "v"], "timestamp": ["2023-01-01", "soon"]})
    _, result = read(write_parquet(tmp_path / "rw.parquet", table))
    first, second = result.rows()
    assert first["timestamp"] == datetime(2023, 1, 1, tzinfo=UTC) and first["meta_json"] is None
    assert second["timestamp"] is None and second["meta_json"] == '{"timestamp":"soon"}'


def test_generic_parquet_with_custom_text_field(tmp_path):
    table = pa.table({"body": ["alpha", "beta"], "score": [1, 2]})
    path = write_parquet(tmp_path / "custom.parquet", table)
    shard, result = read(path, text_field="body")
    assert shard.format == "parquet"
    assert [(r["text"], r["meta_json"]) for r in result.rows()] == [
        ("alpha", '{"score":1}'),
        ("beta", '{"score":2}'),
    ]


ALPACA = [
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say hi.", "output": "Hi!", "category": "greeting"},
    {"instruction": "Empty input.", "input": "", "output": "Fine."},
]


@pytest.mark.parametrize("name", ["alpaca.json", "alpaca.jsonl"])
def test_alpaca(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        write_lines(path, ALPACA)
    else:
        path.write_text(json.dumps(ALPACA, indent=2))
    shard, result = read(path)
    assert shard.format == "alpaca" and shard.table == "instructions"
    rows = result.rows()
    assert [r["text"] for r in rows] == ["Add the numbers.\n\n2 and 3\n\n5", "Say hi.\n\nHi!", "Empty input.\n\nFine."]
    assert [r["input"] for r in rows] == ["2 and 3", "", ""]
    assert [r["meta_json"] for r in rows] == [None, '{"category":"greeting"}', None]
    assert all(r["conversation"] is None for r in rows)
    assert rows[1]["doc_id"] == make_doc_id(shard.fingerprint, 1)


def test_alpaca_parquet_with_explicit_format(tmp_path):
    path = write_parquet(tmp_path / "alpaca.parquet", pa.Table.from_pylist(ALPACA[:1]))
    shard, result = read(path, format="alpaca")
    assert shard.table == "instructions"
    assert [r["output"] for r in result.rows()] == ["5"]


SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hello?"},
            {"from": "gpt", "value": "Hi."},
            {"from": "human", "value": "Bye."},
            {"from": "chatgpt", "value": "Bye!"},
        ],
    },
    {
        "id": "b",  # opens with the assistant: the first user turn answered is used
        "conversations": [
            {"from": "gpt", "value": "How can I help?"},
            {"from": "user", "value": "Explain Arrow."},
            {"from": "bard", "value": "A columnar format."},
            {"from": "tool", "value": "{}"},
        ],
    },
]


def test_sharegpt(tmp_path):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(SHAREGPT))
    shard, result = read(path)
    assert shard.format == "sharegpt" and shard.table == "instructions"
    first, second = result.rows()
    assert (first["instruction"], first["input"], first["output"]) == ("Hello?", "", "Hi.")
    assert first["text"] == "Hello?\n\nHi."
    assert [t["role"] for t in first["conversation"]] == ["system", "user", "assistant", "user", "assistant"]
    assert first["conversation"][4]["content"] == "Bye!"
    assert first["meta_json"] == '{"id":"a"}'
    assert (second["instruction"], second["output"]) == ("Explain Arrow.", "A columnar format.")
    assert [t["role"] for t in second["conversation"]] == ["assistant", "user", "assistant", "tool"]


# ------------------------------------------------------------------------------------------
# discovery


def test_discovery_of_globs_directories_and_duplicates(tmp_path):
    data = tmp_path / "data"
    a = write_lines(data / "a.jsonl", [{"text": "a"}])
    b = write_lines(data / "sub" / "deeper" / "b.jsonl.gz", [{"text": "b"}])
    c = write_parquet(data / "sub" / "c.parquet", pa.table({"text": ["c"]}))
    write_lines(data / ".hidden.jsonl", [{"text": "hidden"}])
    write_lines(data / ".cache" / "d.jsonl", [{"text": "hidden dir"}])
    (data / "README.md").write_text("not an input")
    expected = sorted(str(p) for p in (a, b, c))

    assert [s.path for s in discover_shards(InputSpec(paths=[str(data)]))] == expected
    assert [s.path for s in discover_shards(InputSpec(paths=[f"{data}/**"]))] == expected
    assert [s.path for s in discover_shards(InputSpec(paths=[f"{data}/**/*.jsonl*"]))] == sorted(
        [str(a), str(b)]
    )
    # The same file by several routes, and an identical copy, are one shard.
    shutil.copy(a, data / "sub" / "a-copy.jsonl")
    twice = InputSpec(paths=[str(a), str(a), f"{data}/*.jsonl", str(data)])
    assert [s.path for s in discover_shards(twice)] == expected
    # An explicit file is taken whatever its name.
    odd = write_lines(tmp_path / "records.txt", [{"text": "x"}])
    [shard] = discover_shards(InputSpec(paths=[str(odd)], format="jsonl"))
    assert shard.shard_id.startswith("records-")


def test_shard_ids_are_safe_file_names(tmp_path):
    path = write_lines(tmp_path / "we ird:name?.jsonl.zst", [{"text": "x"}])
    [shard] = discover_shards(InputSpec(paths=[str(path)]))
    assert shard.shard_id == f"we_ird_name-{shard.fingerprint[:12]}"


@pytest.mark.parametrize("pattern, message", [("missing.jsonl", "no such file"),
                                              ("nothing/*.jsonl", "matches no input file"),
                                              ("empty-dir", "matches no input file")])
def test_a_path_that_matches_nothing_is_an_input_error(tmp_path, pattern, message):
    (tmp_path / "empty-dir").mkdir()
    path = str(tmp_path / pattern)
    with pytest.raises(InputError, match=message) as error:
        discover_shards(InputSpec(paths=[path]))
    assert path in str(error.value)


def cut_parquet_footer(path: Path, table: pa.Table) -> Path:
    """A real Parquet file whose footer (metadata and closing magic) is cut off, as a copy
    interrupted in transit leaves it."""
    write_parquet(path, table)
    path.write_bytes(path.read_bytes()[:-100])
    return path


def corrupt_parquet_page(path: Path, table: pa.Table, rows_per_group: int) -> Path:
    """A real Parquet file with the page header of its second row group overwritten (bit rot in
    one page): the first `rows_per_group` rows stay readable, the rest do not."""
    write_parquet(path, table, row_group_size=rows_per_group)
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    damaged = bytearray(path.read_bytes())
    damaged[start : start + 64] = bytes(range(64))
    path.write_bytes(bytes(damaged))
    return path


def c4_table(n: int) -> pa.Table:
    return pa.Table.from_pylist([c4_record(i) for i in range(n)])


def assert_one_file_row(result: Read, path: Path, reason: str, file_bytes: int | None) -> dict:
    """The read holds nothing but one quarantine row for the whole file, counted as one row in."""
    [row] = result.quarantined()
    assert (row["reason"], row["n_rows"], row["source_row"], row["file_bytes"]) == (reason, 1, None, file_bytes)
    assert row["source"] == path.name and str(path) in row["detail"]
    assert result.records.num_rows == 0 and result.rows_in == 1
    return row


def unreadable_files(tmp_path: Path) -> list[tuple[Path, str, str, str]]:
    """(file, format given, reason, what the detail says) for files that cannot be read at all."""
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_bytes(b"PAR1 this is not parquet")
    no_footer = cut_parquet_footer(tmp_path / "no-footer.parquet", c4_table(50))
    not_gzip = tmp_path / "plain.jsonl.gz"
    not_gzip.write_bytes(b'{"text": "not compressed"}\n')
    not_zstd = tmp_path / "garbage.jsonl.zst"
    not_zstd.write_bytes(hashlib.sha256(b"seed").digest() * 16)
    not_an_array = tmp_path / "scalar.json"
    not_an_array.write_text('"just a string"')
    junk = write_lines(tmp_path / "junk.jsonl", [b"not json", b"[1, 2]", b"42"])
    return [
        (not_parquet, "auto", "unreadable_file", "not a valid Parquet file"),
        (not_parquet, "parquet", "unreadable_file", "not a valid Parquet file"),
        (no_footer, "auto", "unreadable_file", "magic bytes not found in footer"),
        (no_footer, "fineweb", "unreadable_file", "magic bytes not found in footer"),
        (not_gzip, "auto", "unreadable_file", "cannot decompress"),
        (not_gzip, "jsonl", "unreadable_file", "cannot decompress"),
        (not_zstd, "auto", "unreadable_file", "cannot decompress"),
        (not_zstd, "c4", "unreadable_file", "cannot decompress"),
        (not_an_array, "alpaca", "unknown_format", "neither a JSON array nor JSON lines"),
        (not_an_array, "auto", "unknown_format", "neither a JSON array nor JSON lines"),
        (junk, "auto", "unknown_format", "no JSON object in the first 3 lines"),
    ]


def test_a_file_that_cannot_be_read_is_one_quarantine_row_not_an_error(tmp_path):
    for path, fmt, reason, message in unreadable_files(tmp_path):
        shard, result = read(path, format=fmt)
        # With format auto the problem is found while planning; with a named format, while reading.
        assert (shard.problem is not None) == (fmt == "auto"), (path, fmt)
        assert shard.format == (fmt if fmt != "auto" else "unknown")
        row = assert_one_file_row(result, path, reason, path.stat().st_size)
        assert message in row["detail"], (path, fmt, row["detail"])


def test_an_unreadable_file_plans_to_the_same_shard_every_time(tmp_path):
    path = cut_parquet_footer(tmp_path / "no-footer.parquet", c4_table(20))
    [first] = discover_shards(InputSpec(paths=[str(path)]))
    [again] = discover_shards(InputSpec(paths=[str(path)]))
    assert first == again and first.fingerprint == file_fingerprint(path)


@pytest.mark.parametrize("batch_rows", [7, 2048])  # batches inside one row group, or larger than one
@pytest.mark.parametrize("fmt, table", [("auto", "documents"), ("alpaca", "instructions")])
def test_a_corrupt_parquet_page_keeps_the_rows_before_it(tmp_path, fmt, table, batch_rows):
    if table == "instructions":
        data = pa.Table.from_pylist([{"instruction": f"Task {i}?", "output": f"Answer {i}."} for i in range(30)])
    else:
        data = c4_table(30)
    path = corrupt_parquet_page(tmp_path / "rot.parquet", data, rows_per_group=10)
    shard, result = read(path, ingest=IngestConfig(batch_rows=batch_rows), format=fmt)
    assert shard.problem is None and shard.table == table
    assert [r["source_row"] for r in result.rows()] == list(range(10))
    [row] = result.quarantined()
    assert (row["reason"], row["source_row"], row["n_rows"]) == ("unreadable_remainder", 10, 1)
    assert row["file_bytes"] == path.stat().st_size and "after row 10" in row["detail"]
    assert result.rows_in == 11  # ten rows read + the unread rest of the file as one row


def test_a_file_that_vanishes_after_planning_is_quarantined(tmp_path):
    path = write_lines(tmp_path / "gone.jsonl", [c4_record(i) for i in range(5)])
    spec = InputSpec(paths=[str(path)])
    [shard] = discover_shards(spec)
    path.unlink()
    row = assert_one_file_row(Read(shard, spec, IngestConfig()), path, "file_vanished", None)
    assert "vanished" in row["detail"]


def reads_any_file() -> bool:
    """Whether this process reads a file whatever its mode (root, or CAP_DAC_OVERRIDE): then a
    chmod 000 file cannot make a permission error. Probed rather than read off os.geteuid(), so that
    root without the capability (`setpriv --bounding-set=-dac_override,-dac_read_search`) runs the
    permission tests too."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        probe = Path(directory) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return False
        return True


@pytest.mark.skipif(reads_any_file(), reason="this process reads a file whatever its mode (root)")
@pytest.mark.parametrize("when", ["before planning", "after planning"])
def test_a_file_without_read_permission_is_quarantined(tmp_path, when):
    path = write_lines(tmp_path / "locked.jsonl.gz", [c4_record(i) for i in range(5)])
    spec = InputSpec(paths=[str(path)])
    if when == "before planning":
        path.chmod(0)
    [shard] = discover_shards(spec)
    path.chmod(0)
    try:
        assert_one_file_row(Read(shard, spec, IngestConfig()), path, "permission_denied", path.stat().st_size)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    "name, content",
    # mtime=0: a gzip header holds the time, and xdist workers must collect the same test ids.
    [("empty.jsonl", b""), ("blank.jsonl.gz", gzip.compress(b"\n \n", mtime=0)), ("array.json", b" [ ] ")],
    ids=["empty.jsonl", "blank.jsonl.gz", "array.json"],
)
def test_empty_files_read_as_zero_rows(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    shard, result = read(tmp_path / name)
    assert shard.format == "jsonl"
    assert result.rows_in == 0 and result.batches == []


# ------------------------------------------------------------------------------------------
# quarantine


def truncated(payload: bytes, compression: str) -> tuple[bytes, int]:
    """`payload` compressed and cut at 60 %, and how many whole lines survive the cut."""
    if compression == "gz":
        whole = gzip.compress(payload, mtime=0)
        cut = whole[: int(len(whole) * 0.6)]
        surviving = zlib.decompressobj(31).decompress(cut)
    else:
        whole = zstandard.ZstdCompressor().compress(payload)
        cut = whole[: int(len(whole) * 0.6)]
        surviving = zstandard.ZstdDecompressor().decompressobj().decompress(cut)
    return cut, surviving.count(b"\n")


def build_bad_input_corpus(tmp_path: Path) -> tuple[Path, IngestConfig, Counter, dict[str, int]]:
    """A corpus with every kind of bad input: (directory, config, reasons expected, rows kept per file)."""
    corpus = tmp_path / "corpus"
    ingest = IngestConfig(max_doc_bytes=1000, batch_rows=7)
    good = [c4_record(i) for i in range(20)]
    line_limit = ingest.max_doc_bytes * 4 + RAW_LIMIT
    bad_lines = [
        b'{"text": "cut in the mid',  # invalid_json
        b'["a", "list"]',  # invalid_json: not an object
        b'{"text": "caf\xe9 au lait"}',  # invalid_utf8 (Latin-1)
        b"",  # blank: not a record
        b"   \t",  # blank: not a record
        b'{"url": "https://no.text/"}',  # missing_text
        b'{"text": null}',  # missing_text
        b'{"text": 42}',  # non_string_text
        b'{"text": ""}',  # empty_text
        b'{"text": " \\n\\t "}',  # empty_text
        orjson.dumps({"text": "x" * 1001}),  # oversized text
        b'{"text": "' + b"y" * line_limit + b'"}',  # oversized line
    ]
    write_lines(corpus / "web.jsonl", good[:10] + bad_lines + good[10:])
    payload = b"".join(orjson.dumps(c4_record(i)) + b"\n" for i in range(3000))
    gz_cut, gz_survivors = truncated(payload, "gz")
    (corpus / "cut.jsonl.gz").write_bytes(gz_cut)
    zst_cut, zst_survivors = truncated(payload, "zst")
    (corpus / "cut.jsonl.zst").write_bytes(zst_cut)
    write_parquet(corpus / "no-text.parquet", pa.table({"body": ["a"] * 5, "n": list(range(5))}))
    write_parquet(corpus / "int-text.parquet", pa.table({"text": [1, 2, 3]}))
    write_parquet(
        corpus / "bad-rows.parquet",
        pa.table({"text": ["ok", None, "", "  \n", "z" * 1001, "also ok"], "n": list(range(6))}),
    )
    (corpus / "alpaca.json").write_text(
        json.dumps(
            ALPACA
            + [
                {"instruction": "No output."},
                {"instruction": ["not", "text"], "output": "x"},
                {"instruction": "Bad input.", "input": 3, "output": "x"},
                {"instruction": " ", "input": "", "output": "\n"},  # empty_text once rendered
            ]
        )
    )
    (corpus / "sharegpt.json").write_text(
        json.dumps(
            SHAREGPT
            + [
                {"id": "no-conversations"},
                {"id": "empty", "conversations": []},
                {"id": "no-reply", "conversations": [{"from": "human", "value": "Anyone?"}]},
                {"id": "bad-turn", "conversations": [{"from": "human", "value": None}]},
                {"id": "not-a-turn", "conversations": ["hello"]},
            ]
        )
    )
    (corpus / "broken-array.json").write_text(json.dumps(ALPACA)[:-30])
    # Files that cannot be read at all, or only up to a corrupt page.
    cut_parquet_footer(corpus / "no-footer.parquet", c4_table(12))
    (corpus / "plain.jsonl.gz").write_bytes(b'{"text": "not compressed"}\n')
    (corpus / "notes.json").write_text("plain text, no JSON\n")
    corrupt_parquet_page(corpus / "rot.parquet", c4_table(21), rows_per_group=ingest.batch_rows)

    expected = Counter(
        {
            QuarantineReason.INVALID_JSON: 2 + 1,  # two lines + the broken array's remainder
            QuarantineReason.INVALID_UTF8: 1,
            QuarantineReason.MISSING_TEXT: 2 + 1,
            QuarantineReason.NON_STRING_TEXT: 1,
            QuarantineReason.EMPTY_TEXT: 2 + 2 + 1,
            QuarantineReason.OVERSIZED: 2 + 1,
            QuarantineReason.TRUNCATED_ARCHIVE: 2,
            QuarantineReason.SCHEMA_MISMATCH: 5 + 3,
            QuarantineReason.INVALID_RECORD: 3 + 5,
            QuarantineReason.UNREADABLE_FILE: 2,
            QuarantineReason.UNKNOWN_FORMAT: 1,
            QuarantineReason.UNREADABLE_REMAINDER: 1,
        }
    )
    # Permission denied and vanished files cannot sit in a corpus on disk: their own tests make them; the
    # extraction reasons belong to WARC pages (tests/storage/test_warc.py).
    assert set(expected) == set(QuarantineReason.ALL) - QuarantineReason.TRANSIENT - QuarantineReason.EXTRACTION
    written = {
        "web.jsonl": 20,
        "cut.jsonl.gz": gz_survivors,
        "cut.jsonl.zst": zst_survivors,
        "no-text.parquet": 0,
        "int-text.parquet": 0,
        "bad-rows.parquet": 2,
        "alpaca.json": 3,
        "sharegpt.json": 2,
        "broken-array.json": len(ALPACA) - 1,
        "no-footer.parquet": 0,
        "plain.jsonl.gz": 0,
        "notes.json": 0,
        "rot.parquet": ingest.batch_rows,
    }
    return corpus, ingest, expected, written


def test_bad_input_corpus_quarantines_every_reason(tmp_path):
    corpus, ingest, expected, written = build_bad_input_corpus(tmp_path)
    spec = InputSpec(paths=[str(corpus)])
    shards = discover_shards(spec)
    assert sorted(Path(s.path).name for s in shards) == sorted(written)
    reasons: Counter[str] = Counter()
    for shard in shards:
        result = Read(shard, spec, ingest)
        assert result.records.num_rows == written[Path(shard.path).name], shard.path
        reasons += result.reasons
        for row in result.quarantined():
            assert row["source"] == Path(shard.path).name
            assert row["raw"] is None or len(row["raw"]) <= RAW_LIMIT
            assert row["detail"]
    assert reasons == expected


def test_quarantine_rows_carry_position_raw_and_detail(tmp_path):
    lines = [b'{"text": "ok"}', b"", b'{"text": 42, "k": 1}', b"{broken", b'{"text": "ok again"}']
    path = write_lines(tmp_path / "q.jsonl", lines)
    shard, result = read(path)
    assert [r["source_row"] for r in result.rows()] == [0, 3]  # the blank line is not a record
    non_string, broken = result.quarantined()
    assert non_string["reason"] == "non_string_text" and "int" in non_string["detail"]
    assert non_string["source_row"] == 1 and non_string["n_rows"] == 1
    assert non_string["byte_offset"] == len(lines[0]) + 2
    assert non_string["raw"] == lines[2] + b"\n"
    assert broken["reason"] == "invalid_json" and broken["source_row"] == 2
    assert broken["byte_offset"] == len(lines[0]) + 2 + len(lines[2]) + 1


def test_schema_mismatch_is_one_row_for_the_whole_file(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", pa.table({"title": ["a"] * 40, "n": range(40)}), row_group_size=8)
    _, result = read(path, ingest=IngestConfig(batch_rows=10))
    [row] = result.quarantined()
    assert row["reason"] == "schema_mismatch" and row["n_rows"] == 40 and result.rows_in == 40
    assert "'text' is missing" in row["detail"] and "title, n" in row["detail"]


def test_truncated_archive_keeps_the_rows_before_the_cut(tmp_path):
    payload = b"".join(orjson.dumps(c4_record(i)) + b"\n" for i in range(3000))
    for compression in ("gz", "zst"):
        cut, survivors = truncated(payload, compression)
        path = tmp_path / f"cut.json.{compression}"
        path.write_bytes(cut)
        shard, result = read(path)
        assert shard.format == "c4"
        assert result.records.num_rows == survivors > 0
        [row] = result.quarantined()
        assert row["reason"] == "truncated_archive" and row["n_rows"] == 1 and row["raw"] is None
        assert row["source_row"] == survivors
        assert row["byte_offset"] == len(b"".join(payload.splitlines(keepends=True)[:survivors]))
        assert f"at row {survivors} " in row["detail"]


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_truncated_json_array_archive(tmp_path, compression):
    items = [{"instruction": f"Task {i}?", "output": f"Answer {i}."} for i in range(5000)]
    cut, _ = truncated(json.dumps(items).encode(), compression)
    path = tmp_path / f"alpaca.json.{compression}"
    path.write_bytes(cut)
    shard, result = read(path)
    assert shard.format == "alpaca" and 0 < result.records.num_rows < len(items)
    [row] = result.quarantined()
    assert (row["reason"], row["n_rows"]) == ("truncated_archive", 1)
    assert row["source_row"] == result.records.num_rows


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_corrupt_archive_keeps_the_rows_before_the_damage(tmp_path, compression):
    # Digests keep the stream from compressing into a handful of bytes.
    payload = b"".join(
        orjson.dumps({"text": hashlib.sha256(str(i).encode()).hexdigest() * 4}) + b"\n"
        for i in range(3000)
    )
    if compression == "gz":
        whole = bytearray(gzip.compress(payload, mtime=0))
    else:
        whole = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(payload))
    middle = len(whole) // 2
    whole[middle : middle + 64] = bytes(range(64))
    path = tmp_path / f"corrupt.jsonl.{compression}"
    path.write_bytes(bytes(whole))
    _, result = read(path)
    assert 0 < result.records.num_rows < 3000
    assert result.reasons[QuarantineReason.TRUNCATED_ARCHIVE] == 1


def test_invalid_json_array_keeps_the_items_before_the_error(tmp_path):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(SHAREGPT)[:-40])
    _, result = read(path)
    assert result.records.num_rows == 1
    [row] = result.quarantined()
    assert (row["reason"], row["source_row"], row["n_rows"]) == ("invalid_json", 1, 1)


# ------------------------------------------------------------------------------------------
# stable ids


def test_doc_ids_are_stable_across_reads_and_copies(tmp_path):
    path = write_lines(tmp_path / "a" / "docs.jsonl.gz", [c4_record(i) for i in range(50)] + [b"oops"])
    shard, first = read(path)
    _, again = read(path)
    copy = tmp_path / "elsewhere" / "renamed.jsonl.gz"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    copied_shard, copied = read(copy)
    assert copied_shard.fingerprint == shard.fingerprint == file_fingerprint(path)
    for other in (again, copied):
        assert other.records.column("doc_id").equals(first.records.column("doc_id"))
        assert other.records.column("source_row").equals(first.records.column("source_row"))
    assert first.quarantined()[0]["source_row"] == copied.quarantined()[0]["source_row"] == 50
    assert first.records.column("doc_id").to_pylist()[9] == make_doc_id(shard.fingerprint, 9)


def test_fingerprint_reads_size_head_and_tail(tmp_path):
    size = 3 << 20
    base = bytearray(b"x" * size)
    paths = {}
    for name, position in (("base", None), ("middle", size // 2), ("head", 10), ("tail", size - 10)):
        content = bytearray(base)
        if position is not None:
            content[position] = ord("y")
        paths[name] = tmp_path / name
        paths[name].write_bytes(content)
    fp = {name: file_fingerprint(path) for name, path in paths.items()}
    assert len(fp["base"]) == 32 and int(fp["base"], 16) >= 0
    assert fp["middle"] == fp["base"]  # the documented caveat: the middle is not read
    assert fp["head"] != fp["base"] and fp["tail"] != fp["base"]
    (tmp_path / "longer").write_bytes(bytes(base) + b"x")
    assert file_fingerprint(tmp_path / "longer") != fp["base"]


# ------------------------------------------------------------------------------------------
# bounded batches


def test_batch_rows_bound_every_batch(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [c4_record(i) for i in range(100)] + [b"bad"] * 5)
    _, result = read(path, ingest=IngestConfig(batch_rows=16))
    assert [b.rows_in for b in result.batches] == [16] * 6 + [9]
    assert result.rows_in == 105


@pytest.mark.parametrize("container", ["jsonl", "parquet"])
def test_batch_bytes_bound_every_batch(tmp_path, container):
    texts = [("t" * (100 + 37 * (i % 7))) for i in range(200)]
    if container == "jsonl":
        path = write_lines(tmp_path / "d.jsonl", [{"text": t} for t in texts])
    else:
        path = write_parquet(tmp_path / "d.parquet", pa.table({"text": texts}))
    ingest = IngestConfig(batch_rows=1000, batch_bytes=1000)
    _, result = read(path, ingest=ingest)
    assert len(result.batches) > 20
    for batch in result.batches:
        sizes = [len(t.encode()) for t in batch.records.column("text").to_pylist()]
        assert sum(sizes) <= ingest.batch_bytes or len(sizes) == 1
    assert result.records.column("text").to_pylist() == texts


def test_a_huge_line_is_quarantined_without_reading_it_whole(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as handle:
        handle.write(b'{"text": "' + b"w" * (10 << 20) + b'"}\n')
        handle.write(b'{"text": "after"}\n')
    ingest = IngestConfig(max_doc_bytes=1000)
    spec = InputSpec(paths=[str(path)])
    [shard] = discover_shards(spec)
    tracemalloc.start()
    try:
        result = Read(shard, spec, ingest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20
    [row] = result.quarantined()
    assert row["reason"] == "oversized" and row["source_row"] == 0
    assert row["raw"].startswith(b'{"text": "www') and len(row["raw"]) == RAW_LIMIT
    assert str((10 << 20) + 13) in row["detail"]
    assert [(r["text"], r["source_row"]) for r in result.rows()] == [("after", 1)]


# ------------------------------------------------------------------------------------------
# real samples


def test_real_c4_sample(sample_data):
    shard, result = read(sample_data / "c4_sample.jsonl")
    assert shard.format == "jsonl"  # the sample keeps only `text`
    assert result.records.num_rows == result.rows_in == 200
    assert len(result.records.column("doc_id").unique()) == 200


def test_real_alpaca_sample(sample_data):
    shard, result = read(sample_data / "alpaca_sample.json")
    assert shard.format == "alpaca"
    assert result.records.num_rows == result.rows_in == 999
    expected = json.loads((sample_data / "alpaca_sample.json").read_text())
    assert result.records.column("output").to_pylist() == [r["output"] for r in expected]


def test_real_sharegpt_sample(sample_data):
    conversations = json.loads((sample_data / "sharegpt_sample.json").read_text())

    def answered(record: dict) -> bool:
        turns = [t["from"] for t in record["conversations"]]
        return any(a == "human" and b == "gpt" for a, b in zip(turns, turns[1:]))

    # 200 conversations, 4 of them without a human turn answered by gpt (empty, system-only, gpt-only)
    shard, result = read(sample_data / "sharegpt_sample.json", ingest=IngestConfig(batch_rows=64))
    assert shard.format == "sharegpt"
    assert result.rows_in == len(conversations) == 200
    assert result.records.num_rows == sum(map(answered, conversations)) == 196
    assert result.reasons == {"invalid_record": 200 - result.records.num_rows}
    assert len(result.batches) == 4  # 64 + 64 + 64 + 8 input rows
