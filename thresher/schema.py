"""Arrow schemas of every table thresher writes, and the doc_id rule.

Schemas are explicit so that no table's types are inferred from its first rows: a shard whose first
rows lack a URL must still write `url` as a string column, and every shard of one table must share
one schema so that DuckDB can read the table as one dataset.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

SCHEMA_VERSION = "1"

# Source metadata that has no typed column of its own is kept, per row, as one JSON object in
# `meta_json` (never an untyped Python dict that later steps silently depend on).
DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("meta_json", pa.string()),
    ],
    metadata={"thresher.table": "documents", "thresher.schema_version": SCHEMA_VERSION},
)

CONVERSATION_TYPE = pa.list_(
    pa.struct([pa.field("role", pa.string()), pa.field("content", pa.large_string())])
)

# Instruction records carry `text` too (the rendered prompt and response) so that every scorer
# written for documents (heuristics, language id, dedup) applies to them unchanged.
INSTRUCTION_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("instruction", pa.large_string(), nullable=False),
        pa.field("input", pa.large_string(), nullable=False),
        pa.field("output", pa.large_string(), nullable=False),
        pa.field("conversation", CONVERSATION_TYPE),
        pa.field("meta_json", pa.string()),
    ],
    metadata={"thresher.table": "instructions", "thresher.schema_version": SCHEMA_VERSION},
)

# One quarantine row stands for `n_rows` input rows: 1 for a bad line or record, the file's row
# count for a Parquet file with the wrong schema, and 1 for a file that cannot be read at all or
# for the unreadable remainder of one (a truncated archive, a corrupt Parquet page), whose row
# count cannot be known. `file_bytes` is the size on disk of the file such a whole-file or
# remainder row stands for (null on per-record rows, and when the file vanished); it is the last
# column so that parts written before it existed still read as one dataset (union by name).
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_row", pa.int64()),
        pa.field("byte_offset", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("n_rows", pa.int64(), nullable=False),
        pa.field("raw", pa.large_binary()),
        pa.field("file_bytes", pa.int64()),
    ],
    metadata={"thresher.table": "quarantine", "thresher.schema_version": SCHEMA_VERSION},
)


class QuarantineReason:
    """The closed set of reasons a row can be quarantined for."""

    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    TRUNCATED_ARCHIVE = "truncated_archive"
    MISSING_TEXT = "missing_text"
    NON_STRING_TEXT = "non_string_text"
    EMPTY_TEXT = "empty_text"
    OVERSIZED = "oversized"
    SCHEMA_MISMATCH = "schema_mismatch"
    INVALID_RECORD = "invalid_record"
    # An HTML page (a WARC response) whose main text could not be extracted.
    EXTRACTION_TIMEOUT = "extraction_timeout"
    EXTRACTION_FAILED = "extraction_failed"
    EMPTY_EXTRACTION = "empty_extraction"
    # The file as a whole: it cannot be opened, decoded or told apart from other formats.
    UNREADABLE_FILE = "unreadable_file"
    UNKNOWN_FORMAT = "unknown_format"
    PERMISSION_DENIED = "permission_denied"
    FILE_VANISHED = "file_vanished"
    # Rows before the damage were read; the rest of the file (one row) was not.
    UNREADABLE_REMAINDER = "unreadable_remainder"

    ALL = (
        INVALID_JSON,
        INVALID_UTF8,
        TRUNCATED_ARCHIVE,
        MISSING_TEXT,
        NON_STRING_TEXT,
        EMPTY_TEXT,
        OVERSIZED,
        SCHEMA_MISMATCH,
        INVALID_RECORD,
        EXTRACTION_TIMEOUT,
        EXTRACTION_FAILED,
        EMPTY_EXTRACTION,
        UNREADABLE_FILE,
        UNKNOWN_FORMAT,
        PERMISSION_DENIED,
        FILE_VANISHED,
        UNREADABLE_REMAINDER,
    )
    # A shard quarantined as a whole holds nothing else; a retry may read it once its cause is gone.
    WHOLE_FILE = frozenset({UNREADABLE_FILE, UNKNOWN_FORMAT, PERMISSION_DENIED, FILE_VANISHED})
    TRANSIENT = frozenset({PERMISSION_DENIED, FILE_VANISHED})
    # Only a WARC input's HTML pages meet these (thresher.storage.readers_warc).
    EXTRACTION = frozenset({EXTRACTION_TIMEOUT, EXTRACTION_FAILED, EMPTY_EXTRACTION})
    # Rows that stand for a file or its unread rest, and so carry `file_bytes`.
    FILE_LEVEL = WHOLE_FILE | {TRUNCATED_ARCHIVE, UNREADABLE_REMAINDER}


def make_doc_id(source_fingerprint: str, source_row: int) -> str:
    """The stable id of the `source_row`-th record of the input whose content fingerprint is given.

    Derived from the input's content fingerprint (not its path) and the record's position, so the
    same input yields the same ids wherever it lies and however often it is ingested. 128 bits keep
    the birthday collision probability below 1e-20 at a billion documents.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(source_fingerprint.encode("ascii"))
    digest.update(b"\x1f")
    digest.update(str(source_row).encode("ascii"))
    return digest.hexdigest()


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
