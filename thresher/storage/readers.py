"""Stream input shards as Arrow record batches in the Document or Instruction schema.

Every input record ends up in exactly one place: a row of `ReadBatch.records` or a row of
`ReadBatch.quarantine` (which may stand for several input rows, see QUARANTINE_SCHEMA), so that
`rows_in == records.num_rows + sum(quarantine.n_rows)` holds for every batch and the counts of a
shard reconcile. Nothing reads a whole file into memory: JSON lines and text lines are read one
bounded line at a time, JSON arrays through ijson, Parquet, CSV/TSV and Arrow IPC one record batch
at a time (`thresher.storage.readers_tabular`), a plain-text document up to max_doc_bytes
(`thresher.storage.readers_text`), WARC and WET archives one record at a time
(`thresher.storage.readers_warc`, whose skipped records are not rows).

A file that cannot be read at all (not Parquet, not gzip, corrupt zstd, no permission, gone since
it was planned) is one quarantine row that counts as one input row; a file that fails part-way
keeps the rows read before the damage and quarantines the rest as one row. Discovery and format
sniffing live in `thresher.storage.formats`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import ijson
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from thresher.config_base import IngestConfig, InputSpec
from thresher.schema import (
    CONVERSATION_TYPE,
    DOCUMENT_SCHEMA,
    INSTRUCTION_SCHEMA,
    QUARANTINE_SCHEMA,
    QuarantineReason,
    make_doc_id,
)
from thresher.storage.formats import (  # noqa: F401  (re-exported: readers is where callers find them)
    DECOMPRESSION_ERRORS,
    INSTRUCTION_FORMATS,
    KNOWN_EXTENSIONS,
    TABULAR_CONTAINERS,
    WEB_FORMATS,
    FileProblem,
    InputError,
    Shard,
    archive_complete,
    container,
    discover_shards,
    file_fingerprint,
    file_problem,
    file_size,
    open_decompressed,
    open_parquet,
    skip_rest_of_line,
)
from thresher.storage.readers_tabular import Chunk, Columnar, open_columnar
from thresher.storage.readers_text import (
    RAW_LIMIT,
    TEXT_MODES,
    Record,
    bounded_lines,
    text_file_records,
    text_line_records,
    truncation,
)
from thresher.storage.readers_warc import web_records

_TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

# (text, url, timestamp) field names of each document preset; InputSpec fields override them.
_DOCUMENT_FIELDS = {
    "c4": ("text", "url", "timestamp"),
    "fineweb": ("text", "url", "date"),
    "refinedweb": ("content", "url", "timestamp"),
    "jsonl": ("text", None, None),
    "parquet": ("text", None, None),
    "csv": ("text", None, None),
    "tsv": ("text", None, None),
    "arrow": ("text", None, None),
    "text": ("text", None, None),  # a plain-text file's records are {"text": ...}
    "warc": ("text", "url", "timestamp"),  # so are a WARC's and a WET's (readers_warc)
    "wet": ("text", "url", "timestamp"),
}
_ALPACA_FIELDS = frozenset({"instruction", "input", "output"})
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class ReadBatch:
    records: pa.RecordBatch
    quarantine: pa.RecordBatch
    rows_in: int


# ---------------------------------------------------------------------------------------------
# Reading


def read_shard(shard: Shard, spec: InputSpec, ingest: IngestConfig) -> Iterator[ReadBatch]:
    """Stream `shard` as batches of at most `ingest.batch_rows` input rows.

    A batch's records hold at most `ingest.batch_bytes` UTF-8 bytes of text, or one document
    when that document alone is larger. `source_row` counts every record of the file, good or
    bad, so positions and doc_ids are stable; in JSON lines, blank (whitespace-only) lines are
    not records and are neither counted nor quarantined. The one batch of a Parquet file with
    the wrong schema accounts for all of the file's rows in one quarantine row.

    Never raises for the file itself: a shard planned with a `problem`, or a file that fails as a
    whole when it is opened, is one quarantine row (a whole-file reason, see
    QuarantineReason.WHOLE_FILE); a failure after rows were read quarantines the rest of the file
    as one `unreadable_remainder` row, unless the reader below kept it more precisely already.
    """
    if shard.problem is not None:
        yield _file_batch(shard, None, shard.problem)
        return
    rows = 0
    try:
        for batch in _read_file(shard, spec, ingest):
            rows += batch.rows_in
            yield batch
    except (InputError, OSError) as exc:
        problem = file_problem(exc, shard.path)
        if rows:
            problem = FileProblem(
                QuarantineReason.UNREADABLE_REMAINDER,
                f"unreadable after row {rows}, the rest of the file is lost: {problem.detail}",
            )
        yield _file_batch(shard, rows or None, problem)


def _file_batch(shard: Shard, source_row: int | None, problem: FileProblem) -> ReadBatch:
    """One quarantine row standing for a whole file (or its unread rest), counted as one input row."""
    empty = (_instruction_batch if shard.table == "instructions" else _document_batch)(shard, [])
    row = _QuarantineRow(source_row, None, problem.reason, problem.detail, 1, None)
    return ReadBatch(empty, _quarantine_batch(shard, [row]), 1)


def _read_file(shard: Shard, spec: InputSpec, ingest: IngestConfig) -> Iterator[ReadBatch]:
    kind = container(shard.path, shard.format)
    tabular = (open_columnar(shard.path, kind, ingest.batch_rows, _csv_block_bytes(ingest))
               if kind in TABULAR_CONTAINERS else None)
    if shard.format in INSTRUCTION_FORMATS:
        parse = _alpaca_row if shard.format == "alpaca" else _sharegpt_row
        convert = _instruction_converter(parse, ingest.max_doc_bytes)
        assemble = _instruction_batch
    else:
        fields = _document_fields(shard.format, spec)
        if tabular is not None:
            yield from _columnar_documents(shard, tabular, fields, ingest)
            return
        convert = _document_converter(fields, ingest.max_doc_bytes)
        assemble = _document_batch

    if tabular is not None:
        records = _columnar_rows(shard.path, tabular)
    elif kind == "array":
        records = _json_array_items(shard.path)
    elif kind == "text":
        read_text = text_line_records if _text_mode(spec) == "lines" else text_file_records
        records = read_text(shard.path, ingest.max_doc_bytes)
    elif kind in WEB_FORMATS:
        records = web_records(shard.path, kind, ingest)
    else:
        records = _json_lines(shard.path, ingest.max_doc_bytes * 4 + RAW_LIMIT)
    yield from _assemble(records, convert, assemble, shard, ingest)


def _csv_block_bytes(ingest: IngestConfig) -> int:
    # A CSV row must fit in one parsing block: as for JSON lines, a row may be 4 x max_doc_bytes.
    return max(1 << 20, ingest.max_doc_bytes * 4 + RAW_LIMIT)


def _text_mode(spec: InputSpec) -> str:
    """`file` (one document per file) or `lines` (one per non-blank line): the input's `text_mode`."""
    if spec.text_mode not in TEXT_MODES:
        raise InputError(f"text_mode must be one of {', '.join(TEXT_MODES)}, got {spec.text_mode!r}")
    return spec.text_mode


# Why a record cannot be kept: a quarantine reason and a detail, like a whole file's problem.
_Reject = FileProblem
_Record = Record  # (source_row, byte_offset, raw line or None, parsed value or _Reject)


def _json_lines(path: str, limit: int) -> Iterator[_Record]:
    row = 0
    loads = orjson.loads
    for item in bounded_lines(path, limit, "max_doc_bytes * 4 + 64 KiB"):
        start, line, problem = item
        if problem is not None:
            value: Any = truncation(item, row) if line is None else problem
        else:
            try:
                value = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.strip():
                    continue
                value = _unparseable_line(line, exc)
            else:
                if type(value) is not dict:
                    value = _Reject(QuarantineReason.INVALID_JSON, f"a JSON {type(value).__name__}, not an object")
        yield row, start, line, value
        row += 1


def _unparseable_line(line: bytes, exc: Exception) -> _Reject:
    # orjson validates UTF-8 itself, so decoding is only needed to name the cause of a failure.
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return _Reject(QuarantineReason.INVALID_UTF8, f"not valid UTF-8: {bad}")
    return _Reject(QuarantineReason.INVALID_JSON, f"not valid JSON: {exc}")


def _json_array_items(path: str) -> Iterator[_Record]:
    complete = archive_complete(path)
    row = 0
    with open_decompressed(path) as stream:
        try:
            for item in ijson.items(stream, "item", use_float=True):
                if type(item) is not dict:
                    item = _Reject(
                        QuarantineReason.INVALID_JSON,
                        f"a JSON {type(item).__name__}, not an object",
                    )
                yield row, None, None, item
                row += 1
        except DECOMPRESSION_ERRORS as exc:
            if row == 0:
                raise InputError(f"{path}: cannot decompress: {exc}") from None
            yield row, None, None, _Reject(
                QuarantineReason.TRUNCATED_ARCHIVE,
                f"archive cut short or corrupt at item {row}: {type(exc).__name__}: {exc}; "
                "the rest of the file is unreadable",
            )
        except ijson.JSONError as exc:
            # A zstd stream cut short surfaces here, as JSON that stops mid-value.
            reason = (
                QuarantineReason.INVALID_JSON if complete else QuarantineReason.TRUNCATED_ARCHIVE
            )
            yield row, None, None, _Reject(
                reason,
                f"invalid JSON at item {row}: {exc}; the rest of the file is unreadable",
            )


def _columnar_rows(path: str, table: Columnar) -> Iterator[_Record]:
    """Every row of a tabular file as a record (for the instruction presets, which read rows)."""
    row = 0
    try:
        for chunk in table.chunks():
            for rejected in chunk.rejected:
                yield rejected.source_row, None, rejected.raw, _Reject(rejected.reason, rejected.detail)
            for source_row, value in zip(chunk.rows, chunk.batch.to_pylist()):
                yield source_row, None, None, value
            row += len(chunk.rows) + len(chunk.rejected)
    except InputError as exc:
        if row == 0:
            raise
        # Rows before the damage may still sit in _assemble's batch: the rest is one record here
        # so that they are kept, not swept into read_shard's remainder.
        yield row, None, None, _Reject(
            QuarantineReason.UNREADABLE_REMAINDER, f"{exc}; the rest of the file is unreadable"
        )


# ---------------------------------------------------------------------------------------------
# Records to rows


def _dump_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # integers beyond 64 bits, nesting deeper than orjson allows
        return json.dumps(
            value, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":")
        ).encode()


def _meta_json(meta: dict) -> bytes | None:
    return _dump_json(meta) if meta else None


def _text_problem(text: str, max_doc_bytes: int) -> tuple[_Reject | None, int]:
    """Why `text` cannot be kept (or None), and its UTF-8 size."""
    if not text or text.isspace():
        return _Reject(QuarantineReason.EMPTY_TEXT, "text is empty or whitespace only"), 0
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_doc_bytes:
        detail = f"text of {size} UTF-8 bytes > max_doc_bytes={max_doc_bytes}"
        return _Reject(QuarantineReason.OVERSIZED, detail), size
    return None, size


class _Fields(NamedTuple):
    text: str
    url: str | None
    timestamp: str | None


def _document_fields(fmt: str, spec: InputSpec) -> _Fields:
    text, url, timestamp = _DOCUMENT_FIELDS[fmt]
    timestamp = spec.timestamp_field or timestamp
    return _Fields(spec.text_field or text, spec.url_field or url, timestamp)


def _parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 string as a datetime (naive means UTC), else None."""
    if type(value) is str:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


# A converter maps one parsed record to (text bytes, row tuple) or a _Reject.
_Converter = Callable[[int, dict], "tuple[int, tuple] | _Reject"]


def _document_converter(fields: _Fields, max_doc_bytes: int) -> _Converter:
    text_key, url_key, ts_key = fields
    field_keys = frozenset(key for key in fields if key)

    def convert(source_row: int, record: dict) -> tuple[int, tuple] | _Reject:
        text = record.get(text_key)
        if text is None:
            return _Reject(QuarantineReason.MISSING_TEXT, f"field {text_key!r} is absent or null")
        if type(text) is not str:
            return _Reject(
                QuarantineReason.NON_STRING_TEXT,
                f"field {text_key!r} is a {type(text).__name__}, not a string",
            )
        problem, size = _text_problem(text, max_doc_bytes)
        if problem:
            return problem
        meta = {key: value for key, value in record.items() if key not in field_keys}
        # A url or timestamp that cannot fill its typed column stays in meta_json, not lost.
        url = record.get(url_key) if url_key else None
        if url is not None and type(url) is not str:
            meta[url_key] = url
            url = None
        raw_ts = record.get(ts_key) if ts_key else None
        timestamp = _parse_timestamp(raw_ts)
        if timestamp is None and raw_ts is not None:
            meta[ts_key] = raw_ts
        return size, (source_row, text, url, timestamp, _meta_json(meta))

    return convert


def _alpaca_row(record: dict) -> tuple[str, str, str, list | None, dict] | _Reject:
    instruction, output = record.get("instruction"), record.get("output")
    input_ = record.get("input")
    if input_ is None:
        input_ = ""
    for name, value in (("instruction", instruction), ("input", input_), ("output", output)):
        if type(value) is not str:
            what = "absent or null" if value is None else f"a {type(value).__name__}"
            return _Reject(QuarantineReason.INVALID_RECORD, f"{name!r} is {what}, not a string")
    meta = {key: value for key, value in record.items() if key not in _ALPACA_FIELDS}
    return instruction, input_, output, None, meta


def _sharegpt_row(record: dict) -> tuple[str, str, str, list | None, dict] | _Reject:
    turns = record.get("conversations")
    if type(turns) is not list:
        return _Reject(QuarantineReason.INVALID_RECORD, "'conversations' is absent or not a list")
    conversation = []
    for index, turn in enumerate(turns):
        if (
            type(turn) is not dict
            or type(turn.get("from")) is not str
            or type(turn.get("value")) is not str
        ):
            return _Reject(
                QuarantineReason.INVALID_RECORD,
                f"turn {index} is not an object with string 'from' and 'value'",
            )
        role = turn["from"]
        conversation.append({"role": _ROLES.get(role.lower(), role), "content": turn["value"]})
    for first, second in zip(conversation, conversation[1:]):
        if first["role"] == "user" and second["role"] == "assistant":
            meta = {key: value for key, value in record.items() if key != "conversations"}
            return first["content"], "", second["content"], conversation, meta
    return _Reject(QuarantineReason.INVALID_RECORD, "no user turn followed by an assistant reply")


def _instruction_converter(
    parse: Callable[[dict], tuple | _Reject], max_doc_bytes: int
) -> _Converter:
    def convert(source_row: int, record: dict) -> tuple[int, tuple] | _Reject:
        parsed = parse(record)
        if type(parsed) is _Reject:
            return parsed
        instruction, input_, output, conversation, meta = parsed
        text = f"{instruction}\n\n{input_}\n\n{output}" if input_ else f"{instruction}\n\n{output}"
        problem, size = _text_problem(text, max_doc_bytes)
        if problem:
            return problem
        row = (source_row, text, instruction, input_, output, conversation, _meta_json(meta))
        return size, row

    return convert


# ---------------------------------------------------------------------------------------------
# Batches


def _doc_ids(fingerprint: str, source_rows: Any) -> pa.Array:
    return pa.array([make_doc_id(fingerprint, row) for row in source_rows], pa.string())


def _document_batch(shard: Shard, rows: list[tuple]) -> pa.RecordBatch:
    source_rows, texts, urls, timestamps, metas = zip(*rows) if rows else ((),) * 5
    return pa.RecordBatch.from_arrays(
        [
            _doc_ids(shard.fingerprint, source_rows),
            pa.array(texts, pa.large_string()),
            pa.array([os.path.basename(shard.path)] * len(rows), pa.string()),
            pa.array(source_rows, pa.int64()),
            pa.array(urls, pa.string()),
            pa.array(timestamps, _TIMESTAMP_TYPE),
            pa.array(metas, pa.string()),
        ],
        schema=DOCUMENT_SCHEMA,
    )


def _instruction_batch(shard: Shard, rows: list[tuple]) -> pa.RecordBatch:
    source_rows, texts, instructions, inputs, outputs, conversations, metas = (
        zip(*rows) if rows else ((),) * 7
    )
    return pa.RecordBatch.from_arrays(
        [
            _doc_ids(shard.fingerprint, source_rows),
            pa.array(texts, pa.large_string()),
            pa.array([os.path.basename(shard.path)] * len(rows), pa.string()),
            pa.array(source_rows, pa.int64()),
            pa.array(instructions, pa.large_string()),
            pa.array(inputs, pa.large_string()),
            pa.array(outputs, pa.large_string()),
            pa.array(conversations, CONVERSATION_TYPE),
            pa.array(metas, pa.string()),
        ],
        schema=INSTRUCTION_SCHEMA,
    )


class _QuarantineRow(NamedTuple):
    source_row: int | None
    byte_offset: int | None
    reason: str
    detail: str
    n_rows: int
    raw: bytes | None


def _quarantine_batch(shard: Shard, rows: list[_QuarantineRow]) -> pa.RecordBatch:
    source_rows, offsets, reasons, details, n_rows, raws = zip(*rows) if rows else ((),) * 6
    file_level = [reason in QuarantineReason.FILE_LEVEL for reason in reasons]
    size = file_size(shard.path) if any(file_level) else None
    return pa.RecordBatch.from_arrays(
        [
            pa.array([os.path.basename(shard.path)] * len(rows), pa.string()),
            pa.array(source_rows, pa.int64()),
            pa.array(offsets, pa.int64()),
            pa.array(reasons, pa.string()),
            pa.array(details, pa.string()),
            pa.array(n_rows, pa.int64()),
            pa.array([raw if raw is None else raw[:RAW_LIMIT] for raw in raws], pa.large_binary()),
            pa.array([size if whole else None for whole in file_level], pa.int64()),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def _assemble(
    records: Iterator[_Record],
    convert: _Converter,
    assemble: Callable[[Shard, list[tuple]], pa.RecordBatch],
    shard: Shard,
    ingest: IngestConfig,
) -> Iterator[ReadBatch]:
    rows: list[tuple] = []
    quarantine: list[_QuarantineRow] = []
    rows_in = text_bytes = 0

    def take() -> ReadBatch:
        nonlocal rows, quarantine, rows_in, text_bytes
        batch = ReadBatch(assemble(shard, rows), _quarantine_batch(shard, quarantine), rows_in)
        rows, quarantine, rows_in, text_bytes = [], [], 0, 0
        return batch

    for source_row, offset, raw, value in records:
        converted = value if type(value) is _Reject else convert(source_row, value)
        if type(converted) is _Reject:
            if raw is None and type(value) is not _Reject:
                raw = _dump_json(value)
            quarantine.append(
                _QuarantineRow(source_row, offset, converted.reason, converted.detail, 1, raw)
            )
        else:
            size, row = converted
            if rows and text_bytes + size > ingest.batch_bytes:
                yield take()
            rows.append(row)
            text_bytes += size
        rows_in += 1
        if rows_in >= ingest.batch_rows:
            yield take()
    if rows_in:
        yield take()


# ---------------------------------------------------------------------------------------------
# Tabular documents (Parquet, CSV/TSV, Arrow), column at a time


def _is_string(type_: pa.DataType) -> bool:
    types = pa.types
    return types.is_string(type_) or types.is_large_string(type_) or types.is_string_view(type_)


def _is_timestamp_like(type_: pa.DataType) -> bool:
    return pa.types.is_timestamp(type_) or pa.types.is_date(type_) or _is_string(type_)


class _Columns(NamedTuple):
    """Where a tabular file's document fields are; url and timestamp None when unusable."""

    text: str
    url: str | None
    timestamp: str | None
    others: list[str]


def _columnar_documents(
    shard: Shard, table: Columnar, fields: _Fields, ingest: IngestConfig
) -> Iterator[ReadBatch]:
    schema = table.schema
    text_type = schema.field(fields.text).type if fields.text in schema.names else None
    if text_type is None or not _is_string(text_type):
        num_rows = table.count_rows()
        problem = (
            f"text column {fields.text!r} is missing"
            if text_type is None
            else f"text column {fields.text!r} is {text_type}, not a string"
        )
        detail = f"{problem}; the file has columns: {', '.join(schema.names)}"
        quarantine = [
            _QuarantineRow(None, None, QuarantineReason.SCHEMA_MISMATCH, detail, num_rows, None)
        ]
        yield ReadBatch(_document_batch(shard, []), _quarantine_batch(shard, quarantine), num_rows)
        return

    def usable(name: str | None, accept: Callable[[pa.DataType], bool]) -> str | None:
        return name if name in schema.names and accept(schema.field(name).type) else None

    url = usable(fields.url, _is_string)
    timestamp = usable(fields.timestamp, _is_timestamp_like)
    others = [name for name in schema.names if name not in (fields.text, url, timestamp)]
    columns = _Columns(fields.text, url, timestamp, others)
    for chunk in table.chunks():
        yield from _rejected_batches(shard, chunk, ingest.batch_rows)
        for start, piece in _split_by_text_bytes(chunk.batch, fields.text, ingest.batch_bytes):
            rows = chunk.rows[start:start + piece.num_rows]
            yield _columnar_document_batch(shard, piece, rows, columns, ingest.max_doc_bytes)


def _rejected_batches(shard: Shard, chunk: Chunk, batch_rows: int) -> Iterator[ReadBatch]:
    """The rows the parser rejected, quarantined in batches of their own."""
    rejected = [_QuarantineRow(r.source_row, None, r.reason, r.detail, 1, r.raw) for r in chunk.rejected]
    for start in range(0, len(rejected), batch_rows):
        part = rejected[start:start + batch_rows]
        yield ReadBatch(_document_batch(shard, []), _quarantine_batch(shard, part), len(part))


def _split_by_text_bytes(
    batch: pa.RecordBatch, text: str, batch_bytes: int
) -> Iterator[tuple[int, pa.RecordBatch]]:
    sizes = pc.binary_length(batch.column(text))
    if (pc.sum(sizes).as_py() or 0) <= batch_bytes:
        yield 0, batch
        return
    start = total = 0
    for index, size in enumerate(sizes.to_pylist()):
        size = size or 0
        if index > start and total + size > batch_bytes:
            yield start, batch.slice(start, index - start)
            start, total = index, 0
        total += size
    yield start, batch.slice(start)


def _columnar_document_batch(
    shard: Shard,
    batch: pa.RecordBatch,
    rows: Sequence[int],
    columns: _Columns,
    max_doc_bytes: int,
) -> ReadBatch:
    text = batch.column(columns.text)
    sizes = pc.binary_length(text)
    missing = pc.is_null(text)
    empty = pc.fill_null(pc.or_(pc.equal(sizes, 0), pc.utf8_is_space(text)), False)
    oversized = pc.fill_null(pc.and_not(pc.greater(sizes, max_doc_bytes), empty), False)
    bad = pc.or_(missing, pc.or_(empty, oversized))

    quarantine: list[_QuarantineRow] = []
    if pc.any(bad).as_py():
        raw_text = pc.binary_slice(text.cast(pa.large_binary()), 0, RAW_LIMIT)
        for reason, mask, describe in (
            (QuarantineReason.MISSING_TEXT, missing, lambda _: f"column {columns.text!r} is null"),
            (QuarantineReason.EMPTY_TEXT, empty, lambda _: "text is empty or whitespace only"),
            (
                QuarantineReason.OVERSIZED,
                oversized,
                lambda size: f"text of {size} UTF-8 bytes > max_doc_bytes={max_doc_bytes}",
            ),
        ):
            indices = pc.indices_nonzero(mask)
            for index, raw, size in zip(
                indices.to_pylist(),
                raw_text.take(indices).to_pylist(),
                sizes.take(indices).to_pylist(),
            ):
                quarantine.append(
                    _QuarantineRow(rows[index], None, reason, describe(size), 1, raw)
                )
        quarantine.sort(key=lambda row: row.source_row)
        good = pc.invert(bad)
        indices = pc.indices_nonzero(good)
        kept_rows = (pc.add(indices, rows.start).to_pylist() if isinstance(rows, range)
                     else [rows[i] for i in indices.to_pylist()])
        kept = batch.filter(good)
    else:
        kept = batch
        kept_rows = rows

    n = kept.num_rows
    timestamps, bad_timestamps = (
        _timestamp_column(kept.column(columns.timestamp))
        if columns.timestamp
        else (pa.nulls(n, _TIMESTAMP_TYPE), {})
    )
    if columns.others or bad_timestamps:
        metas = kept.select(columns.others).to_pylist()
        for index, value in bad_timestamps.items():
            metas[index][columns.timestamp] = value
        meta_json = pa.array([_meta_json(meta) for meta in metas], pa.string())
    else:
        meta_json = pa.nulls(n, pa.string())
    url = kept.column(columns.url).cast(pa.string()) if columns.url else pa.nulls(n, pa.string())
    records = pa.RecordBatch.from_arrays(
        [
            _doc_ids(shard.fingerprint, kept_rows),
            kept.column(columns.text).cast(pa.large_string()),
            pa.array([os.path.basename(shard.path)] * n, pa.string()),
            pa.array(kept_rows, pa.int64()),
            url,
            timestamps,
            meta_json,
        ],
        schema=DOCUMENT_SCHEMA,
    )
    return ReadBatch(records, _quarantine_batch(shard, quarantine), batch.num_rows)


def _timestamp_column(column: pa.Array) -> tuple[pa.Array, dict[int, str]]:
    """The column as timestamp[us, UTC] (naive values taken as UTC), and by row the strings
    that are not ISO 8601 timestamps, which become nulls."""
    if not _is_string(column.type):
        return column.cast(_TIMESTAMP_TYPE, safe=False), {}
    try:
        return column.cast(_TIMESTAMP_TYPE), {}
    except pa.ArrowInvalid:
        # Arrow's parser rejects strings without a zone offset, which Python takes as UTC.
        values = column.to_pylist()
        parsed = [_parse_timestamp(value) for value in values]
        bad = {
            index: value
            for index, (value, stamp) in enumerate(zip(values, parsed))
            if value is not None and stamp is None
        }
        return pa.array(parsed, _TIMESTAMP_TYPE), bad
