"""What every reader raises for a file unusable as a whole, and the decompression errors that mean
one: below format sniffing (thresher.storage.formats), the tabular readers and the object-store
access (thresher.storage.remote), which all raise it."""

from __future__ import annotations

import gzip
import zlib

import zstandard

from thresher.schema import QuarantineReason

DECOMPRESSION_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError)


class InputError(Exception):
    """An input that is unusable as a whole; the message names the file and the problem, `reason`
    is the quarantine reason a file failing this way is recorded under."""

    def __init__(self, message: str, reason: str = QuarantineReason.UNREADABLE_FILE):
        super().__init__(message)
        self.reason = reason


class StoreUnavailable(Exception):
    """An object store that did not answer after its client's retries (throttling, 5xx, a broken
    connection, a timeout): the file is fine, so it is not quarantined. The command fails, nothing of
    the file is kept (a shard is written atomically), and running it again reads the file."""
