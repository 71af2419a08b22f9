"""Reference text for training: plain `.txt` files (one document per line) or any thresher input.

`texts_from(items)` turns what the train functions accept into a stream of document texts:
`str` items are texts themselves; `os.PathLike` items (e.g. `pathlib.Path`) are files, globs or
directories, read with `reference_texts`. Strings are never taken for paths, so that a document
that happens to look like a file name stays a document: wrap paths in `Path`.

`reference_texts(inputs)` reads:
- `.txt`, `.txt.gz`, `.txt.zst` files: one document per non-blank line (a line's trailing "\\r" is
  dropped; bytes that are not UTF-8 are replaced and counted);
- every other file through thresher's own readers (`discover_shards` + `read_shard` with an
  `InputSpec`, so C4 json.gz, FineWeb/RefinedWeb Parquet, JSONL, Alpaca, ShareGPT all work and
  `format`/`text_field` mean what they mean for `thresher ingest`); rows the readers quarantine are
  counted, not used;
- directories (walked, hidden entries skipped) and globs: their `.txt*` files and their files with
  an extension thresher's readers know.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

TEXT_SUFFIXES = (".txt", ".txt.gz", ".txt.zst")


@dataclass
class CorpusStats:
    """What reading the reference inputs met."""

    files: list[str] = field(default_factory=list)
    documents: int = 0
    quarantined_rows: int = 0
    invalid_utf8_lines: int = 0

    def as_dict(self) -> dict:
        return {"files": list(self.files), "documents": self.documents,
                "quarantined_rows": self.quarantined_rows, "invalid_utf8_lines": self.invalid_utf8_lines}


def _expand(item: str) -> list[str]:
    from thresher.storage.readers import KNOWN_EXTENSIONS

    def usable(name: str) -> bool:
        return not name.startswith(".") and name.endswith((*TEXT_SUFFIXES, *KNOWN_EXTENSIONS))

    def walk(directory: str) -> list[str]:
        found = []
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, name) for name in sorted(files) if usable(name))
        return found

    if any(char in item for char in "*?["):
        paths: list[str] = []
        for match in sorted(glob.glob(item, recursive=True)):
            if os.path.isdir(match):
                paths.extend(walk(match))
            elif os.path.isfile(match) and usable(os.path.basename(match)):
                paths.append(match)
    elif os.path.isdir(item):
        paths = walk(item)
    elif os.path.isfile(item):
        paths = [item]
    else:
        raise FileNotFoundError(f"reference input {item!r} does not exist")
    if not paths:
        raise FileNotFoundError(f"reference input {item!r} holds no .txt file and no file thresher can read")
    return [os.path.abspath(p) for p in paths]


def _open_text(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _text_file_lines(path: str, stats: CorpusStats) -> Iterator[str]:
    with _open_text(path) as handle:
        for raw in handle:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", "replace")
                stats.invalid_utf8_lines += 1
            line = line.rstrip("\n").rstrip("\r")
            if line.strip():
                stats.documents += 1
                yield line


def reference_texts(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    format: str = "auto",
    text_field: str | None = None,
    stats: CorpusStats | None = None,
) -> Iterator[str]:
    """The document texts of `inputs` (files, globs, directories), in input order."""
    from thresher.config_base import IngestConfig, InputSpec
    from thresher.storage.readers import discover_shards, read_shard

    stats = stats if stats is not None else CorpusStats()
    ingest = IngestConfig()
    for item in inputs:
        for path in _expand(os.fspath(item)):
            stats.files.append(path)
            if path.endswith(TEXT_SUFFIXES):
                yield from _text_file_lines(path, stats)
                continue
            spec = InputSpec(paths=[path], format=format, text_field=text_field)
            for shard in discover_shards(spec):
                for batch in read_shard(shard, spec, ingest):
                    if batch.quarantine.num_rows:
                        stats.quarantined_rows += sum(batch.quarantine.column("n_rows").to_pylist())
                    texts = batch.records.column("text").to_pylist()
                    stats.documents += len(texts)
                    yield from texts


def texts_from(
    items: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    format: str = "auto",
    text_field: str | None = None,
    stats: CorpusStats | None = None,
) -> Iterator[str]:
    """Texts from a mix of texts (`str`) and files (`os.PathLike`); see the module doc."""
    stats = stats if stats is not None else CorpusStats()
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    for item in items:
        if isinstance(item, os.PathLike):
            yield from reference_texts([Path(item)], format=format, text_field=text_field, stats=stats)
        elif isinstance(item, str):
            stats.documents += 1
            yield item
        else:
            raise TypeError(f"expected str texts or os.PathLike files, got {type(item).__name__}")
