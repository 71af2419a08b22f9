"""Plain-text inputs (`.txt`, `.txt.gz`, `.txt.zst`), and the bounded line reader that JSON lines
share with them.

A text file is one document by default; with `text_mode: lines` every non-blank line is one (blank
lines are neither documents nor quarantined, as in JSON lines). Records come out in the readers'
record form, `(source_row, byte_offset, raw, value)`, where value is `{"text": str}` or a
FileProblem, so that the document converter of `thresher.storage.readers` applies its checks
(empty, oversized) to them as to every other format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from thresher.schema import QuarantineReason
from thresher.storage.formats import (
    DECOMPRESSION_ERRORS,
    FileProblem,
    InputError,
    archive_complete,
    open_decompressed,
    skip_rest_of_line,
)

# Quarantined raw bytes are evidence for a human, not a copy of the input: capping them keeps the
# quarantine table small however large the offending line is.
RAW_LIMIT = 64 << 10
TEXT_MODES = ("file", "lines")

Record = tuple[int, int | None, bytes | None, Any]


class Line(NamedTuple):
    """One line of a file (`data` with its newline), or a `problem`: an oversized line (data holds
    its first RAW_LIMIT bytes) or the unreadable end of a cut-short archive (data None)."""

    offset: int
    data: bytes | None
    problem: FileProblem | None


def bounded_lines(path: str, limit: int, limit_note: str) -> Iterator[Line]:
    """The lines of `path` (decompressed), none longer than `limit` bytes in memory.

    A longer line is skipped to its end and reported as oversized (`limit_note` says where the
    limit comes from). A compressed stream cut short ends with one TRUNCATED_ARCHIVE Line whose
    detail is the cause (see `truncation`); the cut-off last line is part of that lost remainder.
    A file that cannot be decompressed from its first byte raises InputError."""
    complete = archive_complete(path)
    offset = 0
    with open_decompressed(path) as stream:
        readline = stream.readline
        try:
            while line := readline(limit):
                start = offset
                offset += len(line)
                if line[-1] != 10:
                    if len(line) == limit:
                        offset += skip_rest_of_line(stream, limit)
                        yield Line(start, line[:RAW_LIMIT], FileProblem(
                            QuarantineReason.OVERSIZED,
                            f"line of {offset - start} bytes, longer than {limit_note} = {limit}; "
                            f"raw keeps its first {RAW_LIMIT} bytes"))
                        continue
                    if not complete:
                        offset = start
                        break
                yield Line(start, line, None)
        except DECOMPRESSION_ERRORS as exc:
            if offset == 0:
                raise InputError(f"{path}: cannot decompress: {exc}") from None
            complete = False
            cause = f"{type(exc).__name__}: {exc}"
        else:
            cause = "the compressed stream ends inside a frame"
    if not complete:
        yield Line(offset, None, FileProblem(QuarantineReason.TRUNCATED_ARCHIVE, cause))


def truncation(line: Line, row: int) -> FileProblem:
    """The quarantine problem of a TRUNCATED_ARCHIVE Line met at record `row`."""
    assert line.problem is not None
    return FileProblem(
        QuarantineReason.TRUNCATED_ARCHIVE,
        f"archive cut short or corrupt at row {row} (decompressed byte {line.offset}): {line.problem.detail}; "
        "the rest of the file is unreadable",
    )


def text_line_records(path: str, max_doc_bytes: int) -> Iterator[Record]:
    """One record per non-blank line; its text without the line break (and without a UTF-8 BOM
    on the first line)."""
    # Lines up to max_doc_bytes + 64 KiB are read whole so that the converter reports their exact
    # size; only longer ones are cut while reading.
    limit = max_doc_bytes + RAW_LIMIT
    row = 0
    for line in bounded_lines(path, limit, "max_doc_bytes + 64 KiB"):
        value: Any
        if line.problem is not None:
            value = truncation(line, row) if line.data is None else line.problem
        else:
            data = line.data[3:] if line.offset == 0 and line.data.startswith(b"\xef\xbb\xbf") else line.data
            try:
                text = data.decode("utf-8").rstrip("\n").removesuffix("\r")
            except UnicodeDecodeError as bad:
                value = FileProblem(QuarantineReason.INVALID_UTF8, f"not valid UTF-8: {bad}")
            else:
                if not text.strip():
                    continue
                value = {"text": text}
        yield row, line.offset, line.data, value
        row += 1


def text_file_records(path: str, max_doc_bytes: int) -> Iterator[Record]:
    """The whole file as one record; a file over max_doc_bytes is read to its end only to count
    its bytes (never held), and quarantined as oversized with its first 64 KiB."""
    if not archive_complete(path):
        raise InputError(f"{path}: the compressed stream ends inside a frame: the document is incomplete",
                         QuarantineReason.TRUNCATED_ARCHIVE)
    with open_decompressed(path) as stream:
        try:
            data = stream.read(max_doc_bytes + 1)
            size = len(data)
            if size > max_doc_bytes:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
        except DECOMPRESSION_ERRORS as exc:
            # Whatever was decompressed is part of one document: without its end it is not kept.
            reason = (QuarantineReason.TRUNCATED_ARCHIVE if isinstance(exc, EOFError)
                      else QuarantineReason.UNREADABLE_FILE)
            raise InputError(f"{path}: cannot decompress: {type(exc).__name__}: {exc}", reason) from None
    if size > max_doc_bytes:
        value: Any = FileProblem(QuarantineReason.OVERSIZED,
                                 f"file of {size} bytes > max_doc_bytes={max_doc_bytes}; raw keeps its first "
                                 f"{RAW_LIMIT} bytes")
        yield 0, 0, data[:RAW_LIMIT], value
        return
    try:
        value = {"text": data.decode("utf-8-sig")}
    except UnicodeDecodeError as bad:
        value = FileProblem(QuarantineReason.INVALID_UTF8, f"not valid UTF-8: {bad}")
    yield 0, 0, data[:RAW_LIMIT], value
