"""WARC to documents on one core: thresher's WARC reader + extractor vs datatrove's WarcReader + its
Trafilatura extractor, on the same file.

The file: the nine real web pages of tests/data/warc/pages.zip (English and German articles, blog
posts, a Wikipedia article; 44-109 kB of HTML each, two of them ISO-8859-1), written --copies times
each with warcio as Common Crawl lays a crawl out: a request, a response (with the
WARC-Identified-Payload-Type header) and a metadata record per page, gzip per record. Repetition
inflates volume, not variety (no engine caches across pages).

  thresher     read_shard: warcio records, HTML to trafilatura in the extractor process (a pipe
               round trip per page, under the 5 s default time limit), Arrow batches out
  datatrove    WarcReader (warcio, UTF-8 else cchardet) -> Trafilatura (its own forked process with a
               per-page timeout), both as datatrove runs them in a pipeline; favour_precision and
               deduplicate off, as thresher extracts
  plain loop   warcio + trafilatura.extract in this process, no time limit: the floor of the work

Every engine extracts with favor_precision off and no comments. The process is pinned to one CPU
before anything starts, so the extractor processes of thresher and datatrove (which inherit the
affinity) share that core with their readers: docs/s per core. Each engine runs --repeats times,
interleaved; the best run counts (the machine is shared). Starting an extractor process (about a
second) is counted, once per file, as an ingest pays it.

The record parser was chosen by measuring it here: 2,000 responses (130 MB of HTML, 31 MB gzip),
read with their payloads, took 0.97 s with warcio 1.8.1 and 0.86 s with fastwarc 2.0.0 (one run,
shared two-core machine), against about 60 s of extraction for the same pages: parsing is ~2 % of
the work, so thresher uses warcio (pure Python, what datatrove uses too, and the writer the tests use)
rather than a compiled dependency for a 0.2 % gain. `--parse-only` prints warcio's share here.

Run: `python bench/warc_throughput.py [--copies 40] [--repeats 2]` (about a minute at the defaults).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thresher.config import IngestConfig, InputSpec  # noqa: E402
from thresher.storage.readers import discover_shards, read_shard  # noqa: E402


def write_crawl(path: Path, copies: int) -> int:
    """The pages `copies` times over as a gzipped WARC; returns the number of HTML responses."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with zipfile.ZipFile(ROOT / "tests" / "data" / "warc" / "pages.zip") as archive:
        pages = [(item["url"], archive.read(item["file"])) for item in json.loads(archive.read("index.json"))]
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for copy in range(copies):
            for url, html in pages:
                url = f"{url}?copy={copy}"
                request = f"GET {url} HTTP/1.1\r\nHost: example.org\r\n\r\n".encode()
                writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(request),
                                                              length=len(request)))
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
                # Common Crawl names the sniffed type; without it datatrove asks libmagic, which takes one
                # of the pages for JavaScript and drops it.
                writer.write_record(writer.create_warc_record(
                    url, "response", payload=io.BytesIO(html), length=len(html), http_headers=http,
                    warc_headers_dict={"WARC-Identified-Payload-Type": "text/html"}))
                writer.write_record(writer.create_warc_record(url, "metadata", length=18, payload=io.BytesIO(
                    b"fetchTimeMs: 120\r\n"), warc_content_type="application/warc-fields"))
    return copies * len(pages)


def run_thresher(path: Path) -> tuple[int, int]:
    spec = InputSpec(paths=[str(path)], format="warc")
    [shard] = discover_shards(spec)
    docs = chars = 0
    for batch in read_shard(shard, spec, IngestConfig()):
        docs += batch.records.num_rows
        chars += sum(len(text) for text in batch.records.column("text").to_pylist())
    return docs, chars


def run_datatrove(path: Path) -> tuple[int, int]:
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    reader = WarcReader(str(path.parent), glob_pattern=path.name)
    extractor = Trafilatura(favour_precision=False, deduplicate=False, timeout=5)
    docs = chars = 0
    for document in extractor.run(reader.run(rank=0, world_size=1)):
        docs += 1
        chars += len(document.text)
    return docs, chars


def run_plain(path: Path) -> tuple[int, int]:
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    docs = chars = 0
    with open(path, "rb") as handle:
        for record in ArchiveIterator(handle):
            if record.rec_type == "response":
                html = record.content_stream().read().decode("utf-8", errors="replace")
                text = trafilatura.extract(html, favor_precision=False, include_comments=False)
                if text:
                    docs, chars = docs + 1, chars + len(text)
    return docs, chars


def run_parse_only(path: Path) -> tuple[int, int]:
    from warcio.archiveiterator import ArchiveIterator

    docs = size = 0
    with open(path, "rb") as handle:
        for record in ArchiveIterator(handle):
            if record.rec_type == "response":
                docs, size = docs + 1, size + len(record.content_stream().read())
    return docs, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="copies of the nine pages (default 40: 360 pages)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpu", type=int, default=sorted(os.sched_getaffinity(0))[0])
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})

    engines = {"thresher": run_thresher, "datatrove": run_datatrove, "plain loop": run_plain,
               "warcio parse only": run_parse_only}
    try:  # datatrove's WarcReader needs cchardet and python-magic (which loads libmagic1) as well
        import cchardet  # noqa: F401
        import datatrove  # noqa: F401
        import magic  # noqa: F401
    except ImportError as exc:
        del engines["datatrove"]
        print(f"datatrove cannot run ({exc}; pip install 'thresher[test]'): compared with the plain loop only")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crawl.warc.gz"
        pages = write_crawl(path, args.copies)
        print(f"{path.name}: {pages} HTML pages, {path.stat().st_size / 1e6:.1f} MB; pinned to CPU {args.cpu}")
        best: dict[str, float] = {}  # docs/s
        for _ in range(args.repeats):
            for name, run in engines.items():
                started = time.perf_counter()
                docs, chars = run(path)
                seconds = time.perf_counter() - started
                best[name] = max(best.get(name, 0.0), docs / seconds)
                what = "bytes of HTML" if name == "warcio parse only" else "chars of text"
                print(f"  {name:18} {docs:5d} docs {chars:11,d} {what}  {seconds:6.2f} s  {docs / seconds:8.1f} docs/s")
    print("best of each, docs/s per core:")
    for name, rate in best.items():
        print(f"  {name:18} {rate:8.1f}")
    if "datatrove" in best:
        print(f"thresher / datatrove: {best['thresher'] / best['datatrove']:.2f}x")
    print(f"thresher / plain loop: {best['thresher'] / best['plain loop']:.2f}x (under 1: what the time limit's "
          "process and thresher's checks cost)")
    print(f"warcio parsing: {best['plain loop'] / best['warcio parse only']:.1%} of the plain loop's time")


if __name__ == "__main__":
    main()
