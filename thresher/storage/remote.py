"""Inputs in object storage and other fsspec filesystems: `s3://bucket/prefix/...` (files, prefixes
taken as directories, globs with `**`), and whatever other protocol fsspec has installed (`gs://`
with gcsfs, `memory://`, ...). `file://` URLs are local paths and go the local way.

Everything object-store specific is here; the readers ask `is_remote(path)` and open through
`open_input`, so every format streams from the store: a Parquet file is read with range requests
through the file object (footer first, then its row groups), a JSON lines or WARC file a block at a
time, never downloaded whole first. The run directory stays local.

- Credentials come from the environment, read by the filesystem's own library (for S3 botocore:
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, AWS_ENDPOINT_URL or
  AWS_ENDPOINT_URL_S3, AWS_DEFAULT_REGION). thresher never reads, logs or records them; credentials
  written into a URL (`s3://key:secret@bucket/...`) are stripped by `without_credentials` before the
  path is used or recorded anywhere.
- Throttling (503 SlowDown, 429) is retried by botocore's adaptive retry mode (`S3_RETRIES`), with
  backoff and a client-side rate limiter; AWS_MAX_ATTEMPTS / AWS_RETRY_MODE in the environment
  override it.
- Listing is one recursive listing per prefix or glob root (`fs.find(detail=True)`), and the
  fingerprint of an object comes from that listing's metadata (`fingerprint`), not from its bytes.
- A read that fails (the object vanished or changed since it was planned, the connection broke after
  the retries) raises OSError, which the readers turn into a quarantine row like any local file's.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import re
from collections.abc import Callable
from typing import Any, BinaryIO

from thresher.storage.file_errors import InputError, StoreUnavailable

_PROTOCOL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# `scheme://user[:secret]@` before the bucket; an access key has no "/" (a secret may), and a bucket
# name has no ":" or "@", so a key name holding "@" further on is never taken for credentials.
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@:]*(?::[^@]*)?@")
# Protocols that name local files, and the Hugging Face datasets that thresher.storage.hf_datasets resolves.
_NOT_REMOTE = frozenset({"file", "local", "hf"})
S3_EXTRA = "pip install 'thresher[s3]'"
# What each protocol needs installed, for a one-line error naming it (fsspec's own names the rest).
_PROTOCOL_PACKAGES = {"s3": ("s3fs", S3_EXTRA), "s3a": ("s3fs", S3_EXTRA), "gs": ("gcsfs", "pip install gcsfs"),
                      "gcs": ("gcsfs", "pip install gcsfs")}
# botocore's adaptive mode: exponential backoff with jitter on throttling and transient errors
# (503 SlowDown, 429, 500/502/504, connection errors), plus a client-side token bucket that slows
# this process down when the store keeps throttling it.
S3_RETRIES = {"total_max_attempts": 10, "mode": "adaptive"}
# Range requests from 256 KiB growing to 8 MiB (_GuardedFile): few requests for a streamed file, little
# memory per open file (s3fs reads ahead 50 MiB blocks by default).
_FIRST_FETCH = 256 << 10
_BLOCK_BYTES = 8 << 20
# The buffered reader above stays small, so that its reads do not set the size of the first request.
_READ_BUFFER = 64 << 10
_FINGERPRINT_SPAN = 1 << 20
# Metadata fields that identify an object's content, best first (name, value): GCS's md5/crc32c, the
# S3 ETag (an MD5 for single-part uploads, the MD5 of the parts' MD5s for multipart ones).
_CHECKSUM_FIELDS = ("md5Hash", "crc32c", "ETag", "etag", "content_md5")


def protocol(path: str) -> str | None:
    found = _PROTOCOL.match(path)
    return found.group(1).lower() if found else None


def is_remote(path: str) -> bool:
    """Whether `path` is a URL of a non-local fsspec filesystem (not a local path, `file://` or `hf://`)."""
    scheme = protocol(path)
    return scheme is not None and scheme not in _NOT_REMOTE


def local_path(path: str) -> str:
    """A `file://` URL as the local path it names; any other path unchanged."""
    return path[len("file://"):] if protocol(path) == "file" else path


def without_credentials(path: str) -> str:
    """`path` without credentials written into a URL (`s3://key:secret@bucket/x` -> `s3://bucket/x`)."""
    return _CREDENTIALS.sub(r"\1", path)


def has_credentials(path: str) -> bool:
    return _CREDENTIALS.match(path) is not None


# ---------------------------------------------------------------------------------------------
# Filesystems


_filesystems: dict[tuple, Any] = {}


def filesystem(scheme: str) -> Any:
    """The fsspec filesystem of `scheme`, built once per process and per environment (a changed
    AWS_* variable, a fork, builds a new one: its client holds the credentials and an event loop)."""
    environment = hashlib.blake2b(repr(sorted((k, v) for k, v in os.environ.items() if k.startswith(
        ("AWS_", "GOOGLE_", "FSSPEC_")))).encode(), digest_size=16).hexdigest()  # a digest: no copy of a secret
    key = (scheme, os.getpid(), environment)
    if key not in _filesystems:
        _filesystems[key] = _build_filesystem(scheme)
    return _filesystems[key]


def _build_filesystem(scheme: str) -> Any:
    import fsspec

    package, install = _PROTOCOL_PACKAGES.get(scheme, (None, None))
    if package and importlib.util.find_spec(package) is None:
        raise InputError(f"{scheme}:// inputs need {package}: {install}")
    options: dict[str, Any] = {"skip_instance_cache": True}
    if scheme in ("s3", "s3a"):
        if not ({"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} & os.environ.keys()):
            options["config_kwargs"] = {"retries": dict(S3_RETRIES)}
    try:
        return fsspec.filesystem(scheme, **options)
    except (ImportError, ValueError) as exc:  # fsspec names the package a known protocol needs
        raise InputError(f"{scheme}:// inputs: {' '.join(str(exc).split())}") from None


def _fs_and_path(url: str) -> tuple[Any, str]:
    fs = filesystem(protocol(url) or "")
    return fs, fs._strip_protocol(url)


def _listing_error(url: str, exc: BaseException) -> InputError:
    """One line for a listing that failed: a bucket that does not exist, no access, no credentials,
    an endpoint that cannot be reached."""
    if isinstance(exc, FileNotFoundError):
        what = "no such bucket or prefix"
    elif isinstance(exc, PermissionError):
        what = "access denied (check the credentials in the environment, e.g. AWS_ACCESS_KEY_ID or AWS_PROFILE)"
    else:
        what = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return InputError(f"{url}: cannot list: {what}")


# ---------------------------------------------------------------------------------------------
# Listing


def expand(pattern: str, skipped: dict[str, str], reason_in_folder: Callable[[str, list[str]], str | None],
           hidden_directory: str, glob_chars: str) -> list[str]:
    """The object URLs `pattern` names (a file, a prefix walked as a directory, or a glob whose
    matched prefixes are walked too), with one recursive listing; what it passes over goes into
    `skipped` (URL -> reason). `reason_in_folder(name, names in its folder)` is the local rule for a
    file found in a folder (None: read it); names under a hidden folder are skipped with
    `hidden_directory`, recorded for the folder."""
    fs, path = _fs_and_path(pattern)
    magic = min((path.index(c) for c in glob_chars if c in path), default=None)
    if magic is not None and "/" not in path[:magic].lstrip("/"):
        raise InputError(f"{pattern}: a glob must name its bucket (s3://bucket/prefix/**)")
    root = (path[:magic].rsplit("/", 1)[0] if magic is not None else path).rstrip("/") or path[:1]
    fs.invalidate_cache(root)  # a listing is the plan's view of the store: never one from an earlier plan
    try:
        listed = fs.find(root, detail=True)
    except Exception as exc:  # noqa: BLE001 - any failure to list (botocore's, aiohttp's) is one line
        raise _listing_error(pattern, exc) from None
    files = {name: info for name, info in listed.items() if info.get("type", "file") == "file"}
    if magic is None:
        if path.rstrip("/") in files:  # a literal object: read whatever its name
            return [fs.unstrip_protocol(path.rstrip("/"))]
        taken = files
        base = path.rstrip("/")
    else:
        from fsspec.utils import glob_translate

        matches = re.compile(glob_translate(path)).match
        # A file is taken when it or a folder above it (under the root) matches: a matched folder is walked.
        taken = {name: info for name, info in files.items()
                 if any(matches(prefix) for prefix in _self_and_folders(name, root))}
        base = root
    return _apply_folder_rules(fs, taken, base, skipped, reason_in_folder, hidden_directory)


def _self_and_folders(name: str, root: str) -> list[str]:
    parts = name[len(root):].strip("/").split("/")
    return [f"{root}/{'/'.join(parts[:i])}" if root != "/" else "/" + "/".join(parts[:i])
            for i in range(len(parts), 0, -1)]


def _apply_folder_rules(fs: Any, files: dict[str, dict], base: str, skipped: dict[str, str],
                        reason_in_folder: Callable[[str, list[str]], str | None], hidden_directory: str) -> list[str]:
    by_folder: dict[str, list[str]] = {}
    for name in files:
        folder, _, leaf = name.rpartition("/")
        by_folder.setdefault(folder, []).append(leaf)
    found = []
    for name in sorted(files):
        folder, _, leaf = name.rpartition("/")
        below = folder[len(base):].strip("/").split("/") if folder.startswith(base) else []
        hidden = next((i for i, part in enumerate(below) if part.startswith(".")), None)
        if hidden is not None:  # as os.walk is told not to enter it: the folder is named, once
            skipped[fs.unstrip_protocol("/".join([base.rstrip("/"), *below[:hidden + 1]]))] = hidden_directory
            continue
        reason = reason_in_folder(leaf, by_folder[folder])
        if reason is None:
            found.append(fs.unstrip_protocol(name))
        else:
            skipped[fs.unstrip_protocol(name)] = reason
    return found


def exists(url: str) -> bool:
    fs, path = _fs_and_path(url)
    try:
        return bool(fs.exists(path))
    except Exception:  # noqa: BLE001 - cannot tell: the listing's error already said why
        return False


# ---------------------------------------------------------------------------------------------
# Metadata


def info(url: str) -> dict:
    """The object's metadata: from the plan's listing when it is cached, else one HEAD request."""
    fs, path = _fs_and_path(url)
    return _guarded(url, fs.info, path)


def size(url: str) -> int | None:
    try:
        return int(info(url)["size"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def fingerprint(url: str) -> str:
    """blake2b-128 (hex) of the object's size and content checksum from its metadata (an S3 ETag,
    GCS md5Hash), without reading it: an object overwritten with other bytes gets another one, one
    left alone (or rewritten with the same bytes in the same way) keeps it, and with it its shard
    id and doc_ids. The modification time is left out: a copy or a re-upload of the same bytes is
    the same input, as for local files. A filesystem that reports no checksum (memory://) is
    fingerprinted from its bytes exactly as a local file is (size, first and last MiB)."""
    meta = info(url)
    total = int(meta["size"])
    field = next((name for name in _CHECKSUM_FIELDS if meta.get(name)), None)
    if field is None:
        return _content_fingerprint(url, total)
    checksum = str(meta[field]).strip('"')
    digest = hashlib.blake2b(b"remote-object\x1f", digest_size=16)  # apart from every content fingerprint
    digest.update(f"{total}\x1f{field}\x1f{checksum}".encode())
    return digest.hexdigest()


def _content_fingerprint(url: str, total: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(total.to_bytes(8, "little"))
    with open_input(url) as handle:
        digest.update(handle.read(_FINGERPRINT_SPAN))
        if total > _FINGERPRINT_SPAN:
            handle.seek(max(_FINGERPRINT_SPAN, total - _FINGERPRINT_SPAN))
            digest.update(handle.read(_FINGERPRINT_SPAN))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading


# What a store says when asking again later may succeed: the request itself was fine. botocore has
# retried these already (S3_RETRIES); s3fs hands them on as OSErrors caused by the ClientError.
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "RequestTimeout",
                              "RequestLimitExceeded", "ServiceUnavailable", "InternalError"})
# Connection failures of botocore and aiohttp, by name: neither package is imported for a local run.
_TRANSIENT_TYPES = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                              "ConnectionClosedError", "ProxyConnectionError", "ResponseStreamingError",
                              "ClientConnectorError", "ClientConnectionError", "ServerDisconnectedError",
                              "ClientOSError", "ClientPayloadError", "ServerTimeoutError"})


def is_transient(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from, says the store was unavailable for now."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in _TRANSIENT_TYPES:
            return True
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in _TRANSIENT_STATUS or response.get("Error", {}).get("Code") in _TRANSIENT_CODES:
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _guarded(url: str, method: Callable, *args: Any, **kwargs: Any) -> Any:
    """`method(*args, **kwargs)` with its failures as OSErrors (see _GuardedFile), except a store
    that is unavailable for now: StoreUnavailable, which fails the command instead of quarantining
    a good file."""
    try:
        return method(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - see _GuardedFile
        if is_transient(exc):
            raise StoreUnavailable(f"{url}: the store did not answer after {_retries()} ({_describe(exc)}); "
                                   "nothing of this file was kept: run the command again to read it") from exc
        if isinstance(exc, OSError):
            if type(exc).__name__ == "FileExpired":
                raise FileNotFoundError(f"{url} changed after it was planned (another ETag)") from exc
            raise
        raise OSError(f"{url}: {_describe(exc)}") from exc


def _retries() -> str:
    attempts = os.environ.get("AWS_MAX_ATTEMPTS") or S3_RETRIES["total_max_attempts"]
    return f"{attempts} attempts"


class _GuardedFile(io.RawIOBase):
    """An fsspec file read with range requests that grow as the reading goes on, and whose failures
    are OSErrors.

    The first request after opening (or after a seek out of what was fetched) asks for 256 KiB, each
    next one for twice as much, up to 8 MiB: sniffing a format or reading a Parquet footer costs
    one small request, and streaming a large object needs few. (fsspec's own read-ahead fetches a
    whole block, 8 MiB here, on the first read: twice per file when the format is sniffed.)

    The readers quarantine OSError; a botocore or aiohttp error past the retries would otherwise
    escape them. A store unavailable for now (throttling, 5xx, a broken connection) is not the
    file's fault: StoreUnavailable fails the command, and a rerun reads the file. An object changed
    since it was opened (s3fs reads with If-Match on the planned ETag) is reported as vanished: the
    content that was planned is gone, and a later plan reads the new content under its new fingerprint."""

    def __init__(self, url: str, inner: Any):
        super().__init__()
        self.url = url
        self._inner = inner
        self._position = 0
        self._window = b""  # the bytes of the last request, from _window_start
        self._window_start = 0
        self._next_fetch = _FIRST_FETCH

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        offset = self._position - self._window_start
        if not 0 <= offset < len(self._window):
            _guarded(self.url, self._inner.seek, self._position)
            self._window = _guarded(self.url, self._inner.read, max(len(buffer), self._next_fetch))
            self._window_start, offset = self._position, 0
            self._next_fetch = min(2 * self._next_fetch, _BLOCK_BYTES)
        data = memoryview(self._window)[offset:offset + len(buffer)]
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._size()
        if not 0 <= offset - self._window_start <= len(self._window):
            self._next_fetch = _FIRST_FETCH  # a jump (a Parquet column chunk, a zstd frame header)
        self._position = offset
        return offset

    def _size(self) -> int:
        size = getattr(self._inner, "size", None)
        return int(size) if size is not None else _guarded(self.url, self._inner.seek, 0, io.SEEK_END)

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            self._window = b""
            self._inner.close()
        super().close()


def open_input(url: str) -> BinaryIO:
    """The object for reading: buffered, seekable (range requests), its failures OSErrors."""
    fs, path = _fs_and_path(url)
    # No fsspec cache: _GuardedFile decides how much each request fetches.
    inner = _guarded(url, fs.open, path, "rb", block_size=_BLOCK_BYTES, cache_type="none")
    return io.BufferedReader(_GuardedFile(url, inner), _READ_BUFFER)


class _OwningGzipFile(gzip.GzipFile):
    """A GzipFile that closes the object it reads, as gzip.open does with the file it opens."""

    def __init__(self, source: BinaryIO):
        super().__init__(fileobj=source, mode="rb")
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()


def open_gzip(url: str) -> BinaryIO:
    return _OwningGzipFile(open_input(url))


def arrow_stream(url: str) -> Any:
    """The object as a pyarrow input stream, decompressed by its extension as pyarrow does for a
    local path (`.gz`, `.zst`, `.bz2`): what pyarrow's CSV reader takes."""
    import pyarrow as pa

    try:
        codec = pa.Codec.detect(url).name
    except (TypeError, ValueError):  # no compression extension
        codec = None
    return pa.input_stream(open_input(url), compression=codec)
