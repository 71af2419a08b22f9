"""What every reader raises for a file unusable as a whole, and the low-level opens that raise it:
below both format sniffing (thresher.storage.formats) and the tabular readers, which sniffing uses
to read a CSV header or an Arrow schema."""

from __future__ import annotations

import gzip
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from thresher.schema import QuarantineReason

DECOMPRESSION_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError)


class InputError(Exception):
    """An input that is unusable as a whole; the message names the file and the problem, `reason`
    is the quarantine reason a file failing this way is recorded under."""

    def __init__(self, message: str, reason: str = QuarantineReason.UNREADABLE_FILE):
        super().__init__(message)
        self.reason = reason


def open_parquet(path: str) -> pq.ParquetFile:
    from thresher.storage import remote  # imported here: remote imports InputError from this module

    try:
        # A remote Parquet file is read through its file object: the footer, then row groups, by range requests.
        return pq.ParquetFile(remote.open_input(path) if remote.is_remote(path) else path)
    except (PermissionError, FileNotFoundError):
        raise  # the file is not at fault: file_problem names these for what they are
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a valid Parquet file: {exc}") from None
