"""Tabular inputs as streams of Arrow record batches: Parquet (row group by row group), CSV/TSV
(pyarrow's streaming CSV reader, block by block, gzip/zstd/bz2 by extension) and Arrow IPC /
Feather v2 (`.arrow`, `.feather`, `.ipc`; file or stream format, record batch by record batch).

Each is a `Columnar`: the schema, and chunks of at most `batch_rows` good rows with the source_row
of every row, plus the rows the parser could not take (a CSV row with the wrong number of fields, a
row with invalid UTF-8), which the readers quarantine. A failure part-way raises InputError after
the chunks before it were yielded, so the rows before the damage are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from thresher.schema import QuarantineReason
from thresher.storage import remote
from thresher.storage.file_errors import DECOMPRESSION_ERRORS, InputError

_ARROW_MAGIC = b"ARROW1"
_FEATHER_V1_MAGIC = b"FEA1"


class RejectedRow(NamedTuple):
    source_row: int
    reason: str
    detail: str
    raw: bytes | None


class Chunk(NamedTuple):
    batch: pa.RecordBatch  # good rows
    rows: Sequence[int]  # the source_row of each row of `batch` (a range when contiguous)
    rejected: list[RejectedRow]


class Columnar(NamedTuple):
    schema: pa.Schema
    chunks: Callable[[], Iterator[Chunk]]
    # Rows in the file without reading its data, where the format records it (Parquet).
    known_rows: int | None = None

    def count_rows(self) -> int:
        if self.known_rows is not None:
            return self.known_rows
        return sum(len(chunk.rows) + len(chunk.rejected) for chunk in self.chunks())


def open_parquet(path: str) -> pq.ParquetFile:
    try:
        # A remote Parquet file is read through its file object: the footer, then row groups, by range requests.
        return pq.ParquetFile(remote.open_input(path) if remote.is_remote(path) else path)
    except (PermissionError, FileNotFoundError):
        raise  # the file is not at fault: file_problem names these for what they are
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a valid Parquet file: {exc}") from None


def open_columnar(path: str, kind: str, batch_rows: int, block_bytes: int) -> Columnar:
    """The Columnar of a 'parquet', 'csv', 'tsv' or 'arrow' file; InputError if it cannot be opened."""
    if kind == "parquet":
        parquet = open_parquet(path)
        return Columnar(parquet.schema_arrow, lambda: _parquet_chunks(path, parquet, batch_rows),
                        parquet.metadata.num_rows)
    if kind in ("csv", "tsv"):
        return _csv(path, "\t" if kind == "tsv" else ",", batch_rows, block_bytes)
    if kind == "arrow":
        return _arrow(path, batch_rows)
    raise ValueError(f"not a tabular container: {kind!r}")


def _sliced(batches: Iterator[pa.RecordBatch], batch_rows: int, first_row: int = 0) -> Iterator[Chunk]:
    row = first_row
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            piece = batch.slice(start, batch_rows)
            yield Chunk(piece, range(row, row + piece.num_rows), [])
            row += piece.num_rows


# ---------------------------------------------------------------------------------------------
# Parquet


def parquet_batches(path: str, parquet: pq.ParquetFile, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's batches, one row group at a time: a batch never spans two row groups, so a
    corrupt page loses only its own row group and what follows, not the rows before it that
    would have shared its batch."""
    rows = 0
    for group in range(parquet.num_row_groups):
        batches = parquet.iter_batches(batch_size=batch_rows, row_groups=[group])
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                # A corrupt page surfaces as OSError ("Couldn't deserialize thrift") or ArrowInvalid.
                raise InputError(f"{path}: unreadable Parquet data after row {rows}: {exc}") from None
            if batch is None:
                break
            rows += batch.num_rows
            yield batch


def _parquet_chunks(path: str, parquet: pq.ParquetFile, batch_rows: int) -> Iterator[Chunk]:
    return _sliced(parquet_batches(path, parquet, batch_rows), batch_rows)


# ---------------------------------------------------------------------------------------------
# CSV / TSV


def _csv_options(delimiter: str, block_bytes: int, column_types: dict | None, handler) -> dict:
    # One thread: blocks are parsed in order, so the rows the handler rejects arrive in order, and
    # memory stays at a few blocks. Values may hold line breaks inside quotes (texts do).
    return {
        "read_options": pcsv.ReadOptions(block_size=block_bytes, use_threads=False),
        "parse_options": pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                           invalid_row_handler=handler),
        "convert_options": pcsv.ConvertOptions(column_types=column_types or {}, strings_can_be_null=False),
    }


def _open_csv(path: str, **options) -> pcsv.CSVStreamingReader:
    try:
        return pcsv.open_csv(remote.arrow_stream(path) if remote.is_remote(path) else path, **options)
    except (pa.ArrowException, OSError, *DECOMPRESSION_ERRORS) as exc:
        if isinstance(exc, (PermissionError, FileNotFoundError)):
            raise
        raise InputError(f"{path}: not a readable CSV file: {exc}") from None


def _csv(path: str, delimiter: str, batch_rows: int, block_bytes: int) -> Columnar:
    # The header, then every column as bytes: CSV has no types (a column that looks numeric in
    # the first block must not fail on a word later), and invalid UTF-8 costs a row, not the file.
    names = _open_csv(path, **_csv_options(delimiter, block_bytes, None, lambda row: "skip")).schema.names
    schema = pa.schema([pa.field(name, pa.string()) for name in names])
    as_bytes = {name: pa.binary() for name in names}

    def chunks() -> Iterator[Chunk]:
        rejected: list[RejectedRow] = []

        def invalid_row(row: pcsv.InvalidRow) -> str:
            # `number` counts physical records from 1 with the header: record 2 is source_row 0.
            position = row.number - 2 if row.number is not None and row.number >= 2 else -1
            rejected.append(RejectedRow(position, QuarantineReason.INVALID_RECORD,
                                        f"CSV row with {row.actual_columns} fields, expected {row.expected_columns}",
                                        row.text.encode()))
            return "skip"

        reader = _open_csv(path, **_csv_options(delimiter, block_bytes, as_bytes, invalid_row))
        positions = _Positions()
        read = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowException, OSError, *DECOMPRESSION_ERRORS) as exc:
                raise InputError(f"{path}: unreadable CSV data after row {read}: {exc}") from None
            bad_rows, rejected[:] = positions.place(rejected), []
            rows = positions.take(batch.num_rows)
            read += batch.num_rows + len(bad_rows)
            good, rows, bad_utf8 = _valid_utf8(batch, rows, schema)
            first_rejected = bad_rows + bad_utf8
            if not good.num_rows and first_rejected:
                yield Chunk(good, [], first_rejected)
            for start in range(0, good.num_rows, batch_rows):
                yield Chunk(good.slice(start, batch_rows), rows[start:start + batch_rows],
                            first_rejected if start == 0 else [])
        if rejected:  # rows after the last good one
            yield Chunk(pa.RecordBatch.from_pylist([], schema=schema), [], positions.place(rejected))

    return Columnar(schema, chunks)


class _Positions:
    """Hands out the source_row of good rows, skipping the positions of rows the parser rejected."""

    def __init__(self) -> None:
        self.next = 0
        self.skipped: list[int] = []  # rejected positions not yet passed, ascending

    def place(self, rejected: list[RejectedRow]) -> list[RejectedRow]:
        placed = []
        for row in rejected:
            # An unknown position (never seen with one parsing thread) takes the next free one.
            position = row.source_row if row.source_row >= self.next else self.next
            self.skipped.append(position)
            placed.append(row._replace(source_row=position))
        self.skipped.sort()
        return placed

    def take(self, n: int) -> Sequence[int]:
        start, end = self.next, self.next + n
        skipped = self.skipped
        if not skipped or skipped[0] >= end:
            self.next = end
            return range(start, end)
        rows: list[int] = []
        position = start
        while len(rows) < n:
            if skipped and skipped[0] == position:
                skipped.pop(0)
            else:
                rows.append(position)
            position += 1
        while skipped and skipped[0] == position:  # rejected rows right after the last good one
            skipped.pop(0)
            position += 1
        self.next = position
        return rows


def _valid_utf8(batch: pa.RecordBatch, rows: Sequence[int],
                schema: pa.Schema) -> tuple[pa.RecordBatch, Sequence[int], list[RejectedRow]]:
    """The batch as strings, without the rows that hold invalid UTF-8 in any field (returned)."""
    try:
        return pa.RecordBatch.from_arrays([c.cast(pa.string()) for c in batch.columns], schema=schema), rows, []
    except pa.ArrowInvalid:
        pass
    bad = [False] * batch.num_rows
    for column in batch.columns:
        for index, value in enumerate(column.to_pylist()):
            if not bad[index]:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    bad[index] = True
    raws = batch.to_pylist()
    rejected = [RejectedRow(rows[i], QuarantineReason.INVALID_UTF8, "a field is not valid UTF-8",
                            b"\x1f".join(raws[i].values())) for i in range(batch.num_rows) if bad[i]]
    keep = pa.array([not b for b in bad])
    kept = batch.filter(keep)
    strings = pa.RecordBatch.from_arrays([c.cast(pa.string()) for c in kept.columns], schema=schema)
    return strings, [rows[i] for i in range(batch.num_rows) if not bad[i]], rejected


# ---------------------------------------------------------------------------------------------
# Arrow IPC / Feather v2


def _arrow_file(path: str):
    """The file for pyarrow's IPC readers: a path, or a remote object's file object (range requests)."""
    return pa.PythonFile(remote.open_input(path), mode="r") if remote.is_remote(path) else pa.OSFile(path)


def _arrow(path: str, batch_rows: int) -> Columnar:
    with remote.open_input(path) if remote.is_remote(path) else open(path, "rb") as handle:
        magic = handle.read(len(_ARROW_MAGIC))
    if magic.startswith(_FEATHER_V1_MAGIC):
        raise InputError(f"{path}: a Feather v1 file, which cannot be streamed: rewrite it with "
                         "pyarrow.feather.write_feather (v2)", QuarantineReason.UNKNOWN_FORMAT)
    if magic == _ARROW_MAGIC:
        try:
            reader = pa.ipc.open_file(_arrow_file(path))
        except pa.ArrowInvalid as exc:
            # The footer is at the end: a file cut short has none, but its record batches are the
            # IPC stream that follows the 8-byte magic, readable up to the cut.
            return _salvaged_stream(path, batch_rows, f"{exc}")
        return Columnar(reader.schema, lambda: _guarded(path, batches_of(reader), batch_rows, None))
    return _stream(path, batch_rows, 0, None)


def batches_of(reader: pa.ipc.RecordBatchFileReader) -> Iterator[pa.RecordBatch]:
    for index in range(reader.num_record_batches):
        yield reader.get_batch(index)


def _open_stream(path: str, offset: int) -> pa.ipc.RecordBatchStreamReader:
    source = _arrow_file(path)
    source.seek(offset)
    try:
        return pa.ipc.open_stream(source)
    except (pa.ArrowException, OSError) as exc:
        source.close()
        if isinstance(exc, (PermissionError, FileNotFoundError)):
            raise
        raise InputError(f"{path}: not an Arrow IPC file or stream: {exc}") from None


def _stream(path: str, batch_rows: int, offset: int, cut: str | None) -> Columnar:
    schema = _open_stream(path, offset).schema
    return Columnar(schema, lambda: _guarded(path, iter(_open_stream(path, offset)), batch_rows, cut))


def _salvaged_stream(path: str, batch_rows: int, cause: str) -> Columnar:
    return _stream(path, batch_rows, 8, f"no Arrow footer ({cause}): the file was cut short")


def _guarded(path: str, batches: Iterator[pa.RecordBatch], batch_rows: int, cut: str | None) -> Iterator[Chunk]:
    """Chunks of `batches`; a read error (or, for a file without its footer, the end of what is
    left) raises InputError after the rows before it were yielded."""
    rows = 0
    try:
        for chunk in _sliced(batches, batch_rows):
            rows += chunk.batch.num_rows
            yield chunk
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: unreadable Arrow data after row {rows}: {exc}") from None
    if cut is not None:
        raise InputError(f"{path}: {cut} after row {rows}; what followed is lost")

