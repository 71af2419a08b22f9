"""Where the input shards are and what they hold: discovery, content fingerprints, containers and
compression, format sniffing, and what a file that cannot be read at all is quarantined for.

Containers are decided by the file: `.parquet` is Parquet, `.csv*`/`.tsv*` CSV/TSV, `.arrow`,
`.feather` and `.ipc` Arrow IPC, `.jsonl*` JSON lines, `.txt*` plain text (when the format is
auto: a `.txt` file named with a JSON preset keeps being read as JSON), and any other file is a
JSON array if its first non-blank byte is `[` and JSON lines if it is `{`. The format (c4,
fineweb, ...) only names the fields to read, so every preset works in every container; for
tabular files, auto decides it from the column names. WARC and WET archives (`.warc*`, `.wet*`;
formats `warc`, `wet`) are the exception: their format is their container.

Planning never fails on one file: a file that cannot be fingerprinted or whose format cannot be
decided still becomes a Shard, carrying the `problem` that its reader turns into one quarantine row.
Only a path that matches no file at all is an error here (a typo in the inputs, not a bad file).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import importlib.util
import io
import os
import re
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

import ijson
import orjson
import zstandard

from thresher.config_base import InputSpec
from thresher.schema import QuarantineReason
from thresher.storage import remote
from thresher.storage.file_errors import DECOMPRESSION_ERRORS, InputError  # noqa: F401 (re-exported)
from thresher.storage.hf_datasets import is_hf_dataset, resolve_hf_dataset
from thresher.storage.readers_tabular import open_columnar, open_parquet  # noqa: F401 (re-exported)

TEXT_EXTENSIONS = (".txt", ".txt.gz", ".txt.zst")
CSV_EXTENSIONS = (".csv", ".csv.gz", ".csv.zst", ".csv.bz2")
TSV_EXTENSIONS = (".tsv", ".tsv.gz", ".tsv.zst", ".tsv.bz2")
ARROW_EXTENSIONS = (".arrow", ".feather", ".ipc")
WARC_EXTENSIONS = (".warc", ".warc.gz")
WET_EXTENSIONS = (".wet", ".wet.gz", ".warc.wet.gz")
KNOWN_EXTENSIONS = (
    ".jsonl",
    ".json",
    ".jsonl.gz",
    ".json.gz",
    ".jsonl.zst",
    ".json.zst",
    ".parquet",
    *TEXT_EXTENSIONS,
    *CSV_EXTENSIONS,
    *TSV_EXTENSIONS,
    *ARROW_EXTENSIONS,
    *WARC_EXTENSIONS,
    *WET_EXTENSIONS,
)
# Containers whose rows are columns of Arrow record batches (thresher.storage.readers_tabular).
TABULAR_CONTAINERS = frozenset({"parquet", "csv", "tsv", "arrow"})
# The preset of a plain-text file: it has no fields, its content is the text.
TEXT_FORMAT = "text"
INSTRUCTION_FORMATS = frozenset({"alpaca", "sharegpt"})
# Archives of web records (thresher.storage.readers_warc): the format is the container.
WEB_FORMATS = frozenset({"warc", "wet"})
# The format of a shard planned with format "auto" whose format could not be decided.
UNKNOWN_FORMAT = "unknown"
WEB_EXTRA = "pip install 'thresher[web]'"


def require_web_extra() -> None:
    """Fail with one line naming the install command when the `web` extra (warcio, trafilatura) is missing."""
    missing = [name for name in ("warcio", "trafilatura") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"WARC and WET inputs need {' and '.join(missing)} (the `web` extra): {WEB_EXTRA}")


_FINGERPRINT_SPAN = 1 << 20
_READ_BUFFER = 1 << 20
_ZSTD_BLOCK = 128 << 10
# Auto-detection looks at this many non-blank lines for one JSON object; longer lines are skipped.
_SNIFF_LINES = 100
_SNIFF_LINE_LIMIT = 8 << 20

_SHARD_STEM_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileProblem(NamedTuple):
    """Why a file cannot be read at all: a QuarantineReason and a one-line detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Shard:
    path: str
    format: str
    fingerprint: str
    shard_id: str
    table: str
    # Set when planning already found the file unreadable; reading it yields one quarantine row.
    problem: FileProblem | None = None


def file_problem(exc: BaseException, path: str) -> FileProblem:
    """The quarantine reason and detail for a file that failed as a whole with `exc`."""
    if isinstance(exc, InputError):
        return FileProblem(exc.reason, str(exc))
    if isinstance(exc, PermissionError):
        return FileProblem(QuarantineReason.PERMISSION_DENIED, f"{path}: permission denied: {exc}")
    if isinstance(exc, FileNotFoundError):
        return FileProblem(QuarantineReason.FILE_VANISHED, f"{path}: the file vanished after it was planned: {exc}")
    return FileProblem(QuarantineReason.UNREADABLE_FILE, f"{path}: {type(exc).__name__}: {exc}")


def file_size(path: str) -> int | None:
    """The file's size on disk, or None when it is gone (stat needs no read permission)."""
    if remote.is_remote(path):
        return remote.size(path)
    try:
        return os.stat(path).st_size
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Discovery


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """blake2b-128 (hex) of the file's size, its first MiB and its last MiB.

    Content-based, so a moved, renamed or copied file keeps its fingerprint and with it its shard
    id and doc_ids; files up to 2 MiB are hashed whole. Caveat: for larger files the bytes between
    the first and the last MiB are not read, so two files of equal size that differ only there
    get the same fingerprint (and are taken as one input), and an in-place edit there goes
    unnoticed. That is the price of fingerprinting terabytes of shards without reading them.
    An object in a remote store is fingerprinted from its metadata instead (remote.fingerprint).
    """
    if isinstance(path, str) and remote.is_remote(path):
        return remote.fingerprint(path)
    size = os.path.getsize(path)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(size.to_bytes(8, "little"))
    with open(path, "rb") as handle:
        digest.update(handle.read(_FINGERPRINT_SPAN))
        if size > _FINGERPRINT_SPAN:
            handle.seek(max(_FINGERPRINT_SPAN, size - _FINGERPRINT_SPAN))
            digest.update(handle.read(_FINGERPRINT_SPAN))
    return digest.hexdigest()


def _path_fingerprint(path: str) -> str:
    """Stands in for the content fingerprint of a file whose content cannot be read: stable for
    the path, so a retry of the same unreadable file lands on the same shard; the prefix keeps it
    apart from every content fingerprint."""
    return hashlib.blake2b(b"unreadable-path\x1f" + path.encode(), digest_size=16).hexdigest()


class SkippedInput(NamedTuple):
    """A file (or hidden directory) that expanding a directory or glob passed over, and why."""

    path: str
    reason: str


SKIP_UNKNOWN_EXTENSION = "unknown extension (not one of the known input formats)"
SKIP_HIDDEN_FILE = "hidden file"
SKIP_HIDDEN_DIRECTORY = "hidden directory (not walked)"
SKIP_DIRECTORY_SYMLINK = "symlink to a directory (not followed: it could loop)"
SKIP_NOT_A_FILE = "not a regular file (broken symlink, socket, device...)"
SKIP_DATASET_METADATA = "datasets save_to_disk metadata (the folder's .arrow files are read)"
# What `datasets.Dataset.save_to_disk` writes next to its Arrow shards (and DatasetDict above its
# split folders): JSON that describes the data, not data; reading it as JSON lines would quarantine it.
_SAVE_TO_DISK_METADATA = ("state.json", "dataset_info.json", "dataset_dict.json")


def discover_shards(spec: InputSpec) -> list[Shard]:
    """The input files of `spec`, sorted by path, one Shard per distinct file content.

    A path may be a file (taken whatever its name), a glob pattern (`**` recurses), a directory
    (walked recursively) or a Hugging Face dataset (`hf://datasets/<owner>/<name>[/<path>]`, read
    from its snapshot in the local Hugging Face cache: thresher.storage.hf_datasets), or any of these in
    object storage (`s3://bucket/prefix/**`, any fsspec URL, streamed: thresher.storage.remote). Globs and
    directories take only files with a known extension (KNOWN_EXTENSIONS) and skip hidden files and
    directories (`expand_inputs` says which, and why).
    A file reached twice, or two files with the same fingerprint, give one shard: the first by path.
    A file that cannot be read or sniffed gives a shard with a `problem` (see the module docstring).
    """
    paths, _skipped = expand_inputs(spec)
    shards: list[Shard] = []
    fingerprints: set[str] = set()
    for path in paths:
        problem = None
        try:
            fingerprint = file_fingerprint(path)
        except OSError as exc:
            fingerprint, problem = _path_fingerprint(path), file_problem(exc, path)
        if fingerprint in fingerprints:
            continue
        fingerprints.add(fingerprint)
        fmt = spec.format
        if fmt == "auto" and problem is None:
            try:
                fmt = detect_format(path)
            except (InputError, OSError) as exc:
                problem = file_problem(exc, path)
        if fmt == "auto":
            fmt = UNKNOWN_FORMAT
        if fmt in WEB_FORMATS:  # a missing extra fails the command, not file after file
            require_web_extra()
        shards.append(
            Shard(
                path=path,
                format=fmt,
                fingerprint=fingerprint,
                shard_id=f"{_safe_stem(path)}-{fingerprint[:12]}",
                table="instructions" if fmt in INSTRUCTION_FORMATS else "documents",
                problem=problem,
            )
        )
    return shards


def expand_inputs(spec: InputSpec) -> tuple[list[str], list[SkippedInput]]:
    """The files `spec.paths` name (absolute, sorted, once each), and what its directories and globs
    held but passed over, with why (sorted by path). A literal file path is never passed over: it is
    read whatever its name, and quarantined when it cannot be. Raises InputError for a path that
    matches no input file."""
    paths: set[str] = set()
    skipped: dict[str, str] = {}
    for pattern in spec.paths:
        if is_hf_dataset(pattern):
            pattern = resolve_hf_dataset(pattern)  # its snapshot in the local Hugging Face cache
        pattern = remote.local_path(pattern)
        matched = _expand(pattern, skipped)
        if not matched and not _is_glob(pattern) and not _exists(pattern):
            # A literal path: its usual trouble is a typo, which the extension list below would hide.
            raise InputError(f"no such file: {pattern}")
        if not matched:
            raise InputError(
                f"{pattern}: matches no input file (globs and directories take only "
                f"{', '.join(KNOWN_EXTENSIONS)} files)"
            )
        paths.update(matched)
    # A file that one pattern passed over and another named is read after all.
    return sorted(paths), [SkippedInput(p, r) for p, r in sorted(skipped.items()) if p not in paths]


def _skip_reason(name: str) -> str | None:
    """Why a file named `name` found in a directory or by a glob is not read (None: it is read)."""
    if name.startswith("."):
        return SKIP_HIDDEN_FILE
    return None if name.endswith(KNOWN_EXTENSIONS) else SKIP_UNKNOWN_EXTENSION


def _walk(directory: str, skipped: dict[str, str] | None = None) -> list[str]:
    found = []
    skipped = {} if skipped is None else skipped
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            path = os.path.abspath(os.path.join(root, name))
            if name.startswith("."):
                skipped[path] = SKIP_HIDDEN_DIRECTORY
            elif os.path.islink(path):  # os.walk does not follow it; say so rather than drop it silently
                skipped[path] = SKIP_DIRECTORY_SYMLINK
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        saved_dataset = _is_save_to_disk_folder(root, files)
        for name in files:
            reason = _reason_in_folder(name, saved_dataset)
            if reason is None:
                found.append(os.path.join(root, name))
            else:
                skipped[os.path.abspath(os.path.join(root, name))] = reason
    return found


def _reason_in_folder(name: str, saved_dataset: bool) -> str | None:
    """Why a file found in a folder is not read (None: it is read); a save_to_disk folder's metadata
    is not data."""
    return SKIP_DATASET_METADATA if saved_dataset and name in _SAVE_TO_DISK_METADATA else _skip_reason(name)


def _is_save_to_disk_folder(directory: str, files: list[str]) -> bool:
    """A `datasets` save_to_disk folder: a Dataset (state.json + dataset_info.json + .arrow shards) or
    a DatasetDict (dataset_dict.json naming split folders)."""
    names = set(files)
    if "dataset_dict.json" in names:
        return True
    return {"state.json", "dataset_info.json"} <= names and any(n.endswith(".arrow") for n in names)


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _exists(path: str) -> bool:
    return remote.exists(path) if remote.is_remote(path) else os.path.exists(path)


def _expand(pattern: str, skipped: dict[str, str] | None = None) -> list[str]:
    skipped = {} if skipped is None else skipped
    if remote.is_remote(pattern):  # one listing of the prefix; the same rules as a local folder's
        return remote.expand(pattern, skipped, lambda name, names: _reason_in_folder(
            name, _is_save_to_disk_folder("", names)), SKIP_HIDDEN_DIRECTORY, "*?[")
    if _is_glob(pattern):
        found = []
        for match in glob.glob(pattern, recursive=True):
            name = os.path.basename(match)
            folder = os.path.dirname(match) or "."
            saved_dataset = name in _SAVE_TO_DISK_METADATA and _is_save_to_disk_folder(folder, os.listdir(folder))
            reason = _reason_in_folder(name, saved_dataset)
            if os.path.isdir(match):
                found.extend(_walk(match, skipped))
            elif not os.path.isfile(match):
                skipped[os.path.abspath(match)] = SKIP_NOT_A_FILE
            elif reason is None:
                found.append(match)
            else:
                skipped[os.path.abspath(match)] = reason
    elif os.path.isdir(pattern):
        found = _walk(pattern, skipped)
    elif os.path.isfile(pattern):
        found = [pattern]
    else:
        found = []
    return [os.path.abspath(path) for path in found]


def _safe_stem(path: str) -> str:
    name = os.path.basename(path)
    known = [ext for ext in KNOWN_EXTENSIONS if name.endswith(ext)]
    stem = name[: -len(max(known, key=len))] if known else os.path.splitext(name)[0]
    return _SHARD_STEM_UNSAFE.sub("_", stem).strip("._")[:80] or "shard"


# ---------------------------------------------------------------------------------------------
# Containers and format sniffing


def container(path: str, fmt: str = "auto") -> str:
    """'parquet', 'csv', 'tsv', 'arrow', 'text', 'warc', 'wet', 'array' or 'lines' for a file read with preset `fmt`."""
    if path.endswith(".parquet"):
        return "parquet"
    for kind, extensions in (("csv", CSV_EXTENSIONS), ("tsv", TSV_EXTENSIONS), ("arrow", ARROW_EXTENSIONS)):
        if path.endswith(extensions):
            return kind
    if fmt == TEXT_FORMAT or (fmt == "auto" and path.endswith(TEXT_EXTENSIONS)):
        return "text"
    if fmt in WEB_FORMATS:
        return fmt
    if fmt == "auto" and path.endswith(WARC_EXTENSIONS + WET_EXTENSIONS):
        return "wet" if path.endswith(WET_EXTENSIONS) else "warc"
    if path.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")):
        return "lines"
    with open_decompressed(path) as stream:
        first = _first_nonblank_byte(path, stream)
    if first == b"[":
        return "array"
    if first in (b"{", b""):
        return "lines"
    raise InputError(
        f"{path}: neither a JSON array nor JSON lines (starts with {first!r})", QuarantineReason.UNKNOWN_FORMAT
    )


def _first_nonblank_byte(path: str, stream: BinaryIO) -> bytes:
    try:
        while chunk := stream.read1(1 << 16):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1]
    except DECOMPRESSION_ERRORS as exc:
        raise InputError(f"{path}: cannot decompress: {exc}") from None
    return b""


def detect_format(path: str) -> str:
    kind = container(path)
    if kind == "text":
        return TEXT_FORMAT
    if kind in WEB_FORMATS:
        return kind
    if kind in TABULAR_CONTAINERS:
        return _format_from_columns(kind, set(_column_names(path, kind)))
    first = _first_array_item(path) if kind == "array" else _first_object_line(path)
    if first is None:
        return "jsonl"  # empty: every line preset reads it as zero rows
    if "conversations" in first:
        return "sharegpt"
    if "instruction" in first and (kind == "array" or "output" in first):
        return "alpaca"
    if {"text", "url", "timestamp"} <= first.keys():
        return "c4"
    return "jsonl"


def _column_names(path: str, kind: str) -> list[str]:
    if kind == "parquet":
        return open_parquet(path).schema_arrow.names
    # The schema only: CSV reads its first block, Arrow its schema message.
    return open_columnar(path, kind, batch_rows=1, block_bytes=1 << 20).schema.names


def _format_from_columns(kind: str, names: set[str]) -> str:
    if "content" in names and "text" not in names:
        return "refinedweb"
    if {"text", "id", "dump"} <= names:
        return "fineweb"
    if kind != "parquet":  # Parquet files of these shapes are named by hand, as before
        if "conversations" in names:
            return "sharegpt"
        if {"instruction", "output"} <= names:
            return "alpaca"
        if {"text", "url", "timestamp"} <= names:
            return "c4"
    return kind


def _first_array_item(path: str) -> dict | None:
    with open_decompressed(path) as stream:
        try:
            first = next(ijson.items(stream, "item", use_float=True), None)
        except DECOMPRESSION_ERRORS as exc:
            raise InputError(f"{path}: cannot decide the format, cannot decompress: {exc}") from None
        except ijson.JSONError as exc:
            raise InputError(
                f"{path}: cannot decide the format, unreadable JSON: {exc}", QuarantineReason.UNKNOWN_FORMAT
            ) from None
    if first is not None and not isinstance(first, dict):
        raise InputError(
            f"{path}: cannot decide the format, first item is not a JSON object", QuarantineReason.UNKNOWN_FORMAT
        )
    return first


def _first_object_line(path: str) -> dict | None:
    nonblank = 0
    with open_decompressed(path) as stream:
        try:
            while nonblank < _SNIFF_LINES and (line := stream.readline(_SNIFF_LINE_LIMIT)):
                if line[-1] != 10 and len(line) == _SNIFF_LINE_LIMIT:
                    skip_rest_of_line(stream, _SNIFF_LINE_LIMIT)
                elif not line.strip():
                    continue
                else:
                    try:
                        value = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        value = None
                    if isinstance(value, dict):
                        return value
                nonblank += 1
        except DECOMPRESSION_ERRORS as exc:
            raise InputError(f"{path}: cannot decide the format, cannot decompress: {exc}") from None
    if nonblank:
        raise InputError(
            f"{path}: cannot decide the format, no JSON object in the first {nonblank} lines",
            QuarantineReason.UNKNOWN_FORMAT,
        )
    return None


# ---------------------------------------------------------------------------------------------
# Opening


def open_binary(path: str, buffering: int = -1) -> BinaryIO:
    """A local file, or an object in a remote store streamed with range requests (thresher.storage.remote)."""
    return remote.open_input(path) if remote.is_remote(path) else open(path, "rb", buffering=buffering)


def open_decompressed(path: str) -> BinaryIO:
    if path.endswith(".gz"):
        return remote.open_gzip(path) if remote.is_remote(path) else gzip.open(path, "rb")
    if path.endswith(".zst"):
        # A read that meets corrupt data loses everything it decoded. Feeding the decoder small
        # compressed chunks and reading a block at a time keeps the rows before the damage.
        reader = zstandard.ZstdDecompressor().stream_reader(
            open_binary(path), read_size=16 << 10, read_across_frames=True, closefd=True
        )
        return io.BufferedReader(reader, _ZSTD_BLOCK)
    return open_binary(path, buffering=_READ_BUFFER)


def archive_complete(path: str) -> bool:
    """Whether a compressed file is known to be whole before it is read.

    gzip reports a stream cut short by raising EOFError while it is read; python-zstandard's
    reader takes it for a normal end, so zstd files are checked by walking their frame headers.
    """
    return _zstd_frames_complete(path) if path.endswith(".zst") else True


def _zstd_frames_complete(path: str) -> bool:
    """Whether the file is a sequence of whole zstd frames, judged from headers alone (seeks)."""
    size = int(remote.info(path)["size"]) if remote.is_remote(path) else os.path.getsize(path)
    position = 0
    with open_binary(path) as handle:
        while position < size:
            handle.seek(position)
            head = handle.read(18)
            magic = int.from_bytes(head[:4], "little")
            if magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame: magic, 4-byte size, payload
                position += 8 + int.from_bytes(head[4:8], "little")
                continue
            try:
                header_size = zstandard.frame_header_size(head)
                has_checksum = zstandard.get_frame_parameters(head).has_checksum
            except zstandard.ZstdError:
                return False
            position += header_size
            last_block = False
            while not last_block:
                handle.seek(position)
                block = handle.read(3)
                if len(block) < 3:
                    return False
                header = int.from_bytes(block, "little")
                last_block = bool(header & 1)
                rle = (header >> 1) & 3 == 1  # an RLE block stores one byte, repeated
                position += 3 + (1 if rle else header >> 3)
            position += 4 if has_checksum else 0
    return position == size


def skip_rest_of_line(stream: BinaryIO, limit: int) -> int:
    skipped = 0
    while chunk := stream.readline(limit):
        skipped += len(chunk)
        if chunk[-1] == 10:
            break
    return skipped
