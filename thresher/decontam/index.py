"""The n-gram index of a benchmark: a sorted array of unique uint64 n-gram hashes, saved as `.npy`.

    <cache_dir>/<key>/ngrams.npy    sorted unique uint64 (8 bytes an n-gram: 10 M n-grams = 80 MB)
    <cache_dir>/<key>/index.json    what was read and counted (files, rows, texts, n-grams)

The key hashes everything the array depends on: the files' content fingerprints
(thresher.storage.formats.file_fingerprint), the fields and reader preset, n, and the
normalisation and hash versions. So an unchanged benchmark is never read twice, and a changed file
gets a new index. Every worker memory-maps the array read-only (`np.load(mmap_mode="r")`, no
pickle), so a process pool shares one copy through the page cache.

Building streams the files with the ingest readers and holds at most a bounded buffer of hashes
plus, at the end, one bucket: when the buffer fills, its unique hashes are split by their top byte
into 256 bucket files on disk; the buckets are then deduplicated one at a time and written after
the `.npy` header in order (the top byte orders them), so the peak is the buffer, not the index.
A benchmark that fits the buffer never touches the buckets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from thresher.config_base import IngestConfig, InputSpec
from thresher.decontam.config import BenchmarkSpec
from thresher.decontam.ngrams import HASH_VERSION, NORMALIZATION_VERSION, batch_ngrams
from thresher.models.resolve import thresher_cache_dir
from thresher.storage.formats import INSTRUCTION_FORMATS, Shard, discover_shards
from thresher.storage.parquet_io import write_json_atomic
from thresher.storage.readers import read_shard

INDEX_VERSION = "1"
DEFAULT_BUFFER_NGRAMS = 1 << 22  # 32 MB of hashes before a spill to the buckets
_TEXTS_PER_BATCH = 512
_BUCKETS = 256
_NPY_HEADER = {"descr": "<u8", "fortran_order": False}
# Columns of the reader's records that are bookkeeping, not benchmark text.
_RECORD_COLUMNS = frozenset({"doc_id", "source", "source_row", "meta_json"})


def default_cache_dir() -> Path:
    """`$THRESHER_CACHE/decontam`, else `$XDG_CACHE_HOME/thresher/decontam`, else `~/.cache/thresher/decontam`."""
    return thresher_cache_dir("decontam")


def _input_spec(spec: BenchmarkSpec) -> InputSpec:
    # A document preset's text column is the first field; the others come from meta_json.
    text_field = spec.fields[0] if spec.fields and spec.format not in INSTRUCTION_FORMATS else None
    return InputSpec(paths=spec.paths, format=spec.format, text_field=text_field)


def benchmark_shards(spec: BenchmarkSpec) -> list[Shard]:
    shards = discover_shards(_input_spec(spec))
    if not shards:
        raise FileNotFoundError(f"benchmark {spec.label}: no file matches {', '.join(spec.paths)}")
    return shards


def index_key(spec: BenchmarkSpec, n: int, shards: list[Shard]) -> str:
    """The cache key of the benchmark's index (see the module doc)."""
    payload = {
        "index": INDEX_VERSION, "normalization": NORMALIZATION_VERSION, "hash": HASH_VERSION, "n": n,
        "fields": spec.fields, "format": spec.format,
        "files": sorted(shard.fingerprint for shard in shards),
    }
    digest = hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=12).hexdigest()
    return f"{spec.label}-{digest}"


def _flatten(value: object) -> str:
    """A field's value as text: strings as they are, lists (answer choices) item by item."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " ".join(_flatten(item) for item in value)
    if isinstance(value, dict):
        return " ".join(_flatten(item) for item in value.values())
    return str(value)


def _batch_texts(records: pa.RecordBatch, fields: list[str] | None, instructions: bool) -> list[str]:
    """Each record's benchmark text: its fields joined by newlines (normalisation makes them spaces)."""
    if not fields:
        return [t or "" for t in records.column("text").to_pylist()]
    if instructions:  # instruction, input, output, conversation, text are columns
        columns = {f: records.column(f).to_pylist() for f in fields if f in records.schema.names
                   and f not in _RECORD_COLUMNS}
    else:  # the reader put fields[0] into `text`
        columns = {fields[0]: records.column("text").to_pylist()}
    rest = [f for f in fields if f not in columns]
    metas = ([orjson.loads(m) if m else {} for m in records.column("meta_json").to_pylist()]
             if rest else [{}] * records.num_rows)
    texts = []
    for row in range(records.num_rows):
        parts = [_flatten(columns[f][row] if f in columns else metas[row].get(f)) for f in fields]
        texts.append("\n".join(p for p in parts if p))
    return texts


@dataclass
class BuildCounts:
    rows: int = 0
    quarantined_rows: int = 0
    short_texts: int = 0  # texts with fewer than n words: no n-gram, undetectable at this n
    ngrams_seen: int = 0


def benchmark_texts(spec: BenchmarkSpec, shards: list[Shard], counts: BuildCounts) -> Iterator[list[str]]:
    """The benchmark's texts, a batch at a time, streamed from its files."""
    input_spec = _input_spec(spec)
    ingest = IngestConfig(batch_rows=_TEXTS_PER_BATCH)
    for shard in shards:
        for read in read_shard(shard, input_spec, ingest):
            counts.rows += read.rows_in
            counts.quarantined_rows += int(sum(read.quarantine.column("n_rows").to_pylist()))
            if read.records.num_rows:
                yield _batch_texts(read.records, spec.fields, shard.table == "instructions")


class _Buckets:
    """Sorted unique hash runs spilled to 256 files by top byte (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.spilled = False

    def path(self, bucket: int) -> Path:
        return self.directory / f"bucket-{bucket:03d}.u64"

    def spill(self, unique_sorted: np.ndarray) -> None:
        self.spilled = True
        bounds = np.searchsorted(unique_sorted >> np.uint64(56), np.arange(_BUCKETS + 1, dtype=np.uint64))
        for bucket in range(_BUCKETS):
            part = unique_sorted[bounds[bucket]: bounds[bucket + 1]]
            if part.size:
                with self.path(bucket).open("ab") as handle:
                    handle.write(part.tobytes())

    def write_npy(self, out: Path) -> int:
        """Deduplicate each bucket (rewriting it), then write header + buckets in order to `out`."""
        total = 0
        for bucket in range(_BUCKETS):
            path = self.path(bucket)
            if path.exists():
                unique = np.unique(np.fromfile(path, dtype=np.uint64))
                unique.tofile(path)
                total += unique.size
        with out.open("wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {**_NPY_HEADER, "shape": (total,)})
            for bucket in range(_BUCKETS):
                path = self.path(bucket)
                if path.exists():
                    with path.open("rb") as part:
                        shutil.copyfileobj(part, handle, 1 << 22)
        return total


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """The unique values of `values`, sorted; sorts `values` in place (no copy of the buffer)."""
    values.sort()
    keep = np.empty(values.size, dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def build_index(spec: BenchmarkSpec, n: int, shards: list[Shard], out: Path,
                buffer_ngrams: int = DEFAULT_BUFFER_NGRAMS) -> dict:
    """Stream the benchmark into `out` (an .npy of sorted unique uint64); returns what was counted."""
    started = time.perf_counter()
    counts = BuildCounts()
    # Filled in place, sorted in place: the buffer is the build's one large allocation (pages are
    # only touched as it fills, so a small benchmark costs its own size).
    buffer = np.empty(buffer_ngrams, dtype=np.uint64)
    filled = 0
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as scratch:
        buckets = _Buckets(Path(scratch))
        for texts in benchmark_texts(spec, shards, counts):
            grams = batch_ngrams(texts, n)
            counts.short_texts += int(np.count_nonzero(grams.word_counts < n))
            counts.ngrams_seen += grams.hashes.size
            hashes = grams.hashes
            while hashes.size:
                take = min(hashes.size, buffer_ngrams - filled)
                buffer[filled: filled + take] = hashes[:take]
                filled, hashes = filled + take, hashes[take:]
                if filled == buffer_ngrams:
                    buckets.spill(_sorted_unique(buffer))
                    filled = 0
        rest = _sorted_unique(buffer[:filled])
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        if buckets.spilled:
            buckets.spill(rest)
            del rest, buffer
            unique = buckets.write_npy(tmp)
        else:
            with tmp.open("wb") as handle:
                np.save(handle, rest, allow_pickle=False)
            unique = int(rest.size)
        os.replace(tmp, out)
    return {"benchmark": spec.label, "n": n, "files": [s.path for s in shards],
            "fingerprints": [s.fingerprint for s in shards], "rows": counts.rows,
            "quarantined_rows": counts.quarantined_rows, "short_texts": counts.short_texts,
            "ngrams_seen": counts.ngrams_seen, "ngrams": unique, "spilled": buckets.spilled,
            "build_seconds": round(time.perf_counter() - started, 3)}


def ensure_index(spec: BenchmarkSpec, n: int, cache_dir: Path, key: str | None = None,
                 shards: list[Shard] | None = None, buffer_ngrams: int = DEFAULT_BUFFER_NGRAMS) -> tuple[Path, bool]:
    """The path of the benchmark's cached index, building it first if absent; and whether it was built."""
    if key is None:
        shards = shards or benchmark_shards(spec)
        key = index_key(spec, n, shards)
    directory = cache_dir / key
    array = directory / "ngrams.npy"
    if array.exists() and (directory / "index.json").exists():
        return array, False
    shards = shards or benchmark_shards(spec)
    directory.mkdir(parents=True, exist_ok=True)
    stats = build_index(spec, n, shards, array, buffer_ngrams)
    write_json_atomic(directory / "index.json", {**stats, "key": key})
    return array, True


def load_index(path: Path) -> np.ndarray:
    """The index, memory-mapped read-only (never unpickled)."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.dtype != np.uint64 or array.ndim != 1:
        raise ValueError(f"{path}: not an n-gram index (dtype {array.dtype}, shape {array.shape})")
    return array


def index_stats(path: Path) -> dict:
    return json.loads((path.parent / "index.json").read_text(encoding="utf-8"))
