"""WARC and WET inputs: real web pages (tests/data/warc/pages.zip) written into archives with warcio's
writer, read back as documents with their URL, time and metadata; records that are not pages skipped;
pages the extractor cannot handle (too slow, empty, undecodable, too big) and cut archives quarantined
with their reason, so that rows in = documents + quarantined."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import os
import signal
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import trafilatura
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tests.cli.test_errors import assert_one_line_error, thresher
from tests.storage.test_readers import Read, read
from thresher.config import IngestConfig, InputSpec
from thresher.storage.formats import FileProblem, InputError
from thresher.storage.readers import discover_shards, read_shard
from thresher.storage.readers_warc import HtmlExtractor

DATE = "2019-08-02T10:11:12Z"
# Strings that are in each page's main text, and boilerplate that is not: from trafilatura's own
# evaluation set (tests/evaldata.json of adbar/trafilatura, where these pages come from).
EXPECTED = {
    "blog.python.org.html": (["You can download Python 3.6.0 here", "We hope you enjoy Python 3.6.0!"],
                             ["Share to Facebook", "Subscribe to Python Insider"]),
    "caktusgroup.com.django.html": (["Was I losing my mind?", "from django.conf import settings"],
                                    ["Mark Lavin", "You might also like:"]),
    "cdu-fraktion-erfurt.de.waldorfschule.html": (["Ein positives Signal gab"], ["Zurück zur Übersicht"]),
    "creativecommons.org.html": (["With a network of", "Our work is to build"],
                                 ["Connect with Creative Commons", "In this section"]),
    "en.wikipedia.org.tsne.html": (["Given a set of high-dimensional objects", "a heavy-tailed Student t-distribution"],
                                   ["Categories:", "Conditional random field"]),
    "gregoryszorc.com.python3.html": (["This effort began in earnest", "Python had a wildly successful past"],
                                      ["View the discussion thread."]),
    "landwirt.com.sensortechnik.html": (["b) Überwachung der somatischen Zellen", "Köllitsch (D)"],
                                        ["Anzeigentarife", "New Holland T6050"]),
    "lemire.me.json.html": (["I use a Skylake processor with GNU GCC 8.3.", "0.091 GB/s"],
                            ["Leave a Reply", "Proudly powered by WordPress"]),
    "wikimediafoundation.org.turkey.html": (["19th birthday", "We will keep this statement updated"],
                                            ["Stay up-to-date on our work.", "Photo credits"]),
}
# The two pages in ISO-8859-1: one says so in its HTTP header, the other only in a <meta> tag.
LATIN1_HEADER = {"landwirt.com.sensortechnik.html": "text/html; charset=iso-8859-1",
                 "cdu-fraktion-erfurt.de.waldorfschule.html": "text/html"}


class Page:
    def __init__(self, name: str, url: str, html: bytes):
        self.name, self.url, self.html = name, url, html

    @property
    def content_type(self) -> str:
        return LATIN1_HEADER.get(self.name, "text/html; charset=UTF-8")


@pytest.fixture(scope="module")
def pages(sample_data) -> list[Page]:
    with zipfile.ZipFile(sample_data / "warc" / "pages.zip") as archive:
        return [Page(item["file"], item["url"], archive.read(item["file"]))
                for item in json.loads(archive.read("index.json"))]


def slow_page(tables: int = 8000) -> bytes:
    """A page that hangs the extractor: trafilatura's work grows with the square of the number of
    tables (8,000 one-cell tables, 480 kB: about 8 s on one core; 20,000: 50 s)."""
    table = b"<table><tr><td><p>cell text words more</p></td></tr></table>"
    return b"<html><body>" + table * tables + b"</body></html>"


# ------------------------------------------------------------------------------------------
# Writing archives with warcio


Records = Callable[[WARCWriter], Iterable]


def write_warc(path: Path, records: Records, gzipped: bool | None = None) -> list[int]:
    """Write the records (gzip per record, by default for a .gz name); the offset where each one ends."""
    ends = []
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=path.name.endswith(".gz") if gzipped is None else gzipped)
        for record in records(writer):
            writer.write_record(record)
            ends.append(handle.tell())
    return ends


def response(writer: WARCWriter, url: str, body: bytes, content_type: str, *headers: tuple[str, str],
             status: str = "200 OK"):
    http = StatusAndHeaders(status, [("Content-Type", content_type), *headers], protocol="HTTP/1.1")
    return writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http,
                                     warc_headers_dict={"WARC-Date": DATE})


def request(writer: WARCWriter, url: str):
    payload = f"GET {url} HTTP/1.1\r\nHost: example.org\r\n\r\n".encode()
    return writer.create_warc_record(url, "request", payload=io.BytesIO(payload), length=len(payload))


def crawl(pages: list[Page]) -> Records:
    """A crawl as Common Crawl writes one: warcinfo, then request, response and metadata per page;
    and one response that is not HTML."""
    def records(writer: WARCWriter):
        yield writer.create_warcinfo_record("crawl.warc.gz", {"software": "thresher tests"})
        for page in pages:
            yield request(writer, page.url)
            yield response(writer, page.url, page.html, page.content_type)
            yield writer.create_warc_record(page.url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\r\n"),
                                            length=18, warc_content_type="application/warc-fields")
        yield response(writer, "https://example.org/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png")
    return records


def meta(row: dict) -> dict:
    return json.loads(row["meta_json"])


def extractor_processes() -> list[psutil.Process]:
    """This process's extractor children (a Prefect test server may be another child)."""
    return [child for child in psutil.Process().children()
            if any("serve_extractions" in part for part in child.cmdline())]


# ------------------------------------------------------------------------------------------
# Documents


def test_real_pages_become_documents_with_url_timestamp_and_metadata(tmp_path, pages, caplog):
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, crawl(pages))
    with caplog.at_level(logging.INFO, logger="thresher.storage.readers_warc"):
        shard, result = read(path)
    assert (shard.format, shard.table) == ("warc", "documents")
    rows = result.rows()
    # Records: warcinfo, then (request, response, metadata) per page: the responses are 2, 5, 8, ...
    assert [r["source_row"] for r in rows] == [2 + 3 * i for i in range(len(pages))]
    assert result.rows_in == len(pages) and result.quarantine.num_rows == 0
    stamp = datetime(2019, 8, 2, 10, 11, 12, tzinfo=UTC)
    for page, row in zip(pages, rows):
        assert (row["url"], row["timestamp"], row["source"]) == (page.url, stamp, "crawl.warc.gz")
        present, absent = EXPECTED[page.name]
        assert all(text in row["text"] for text in present), (page.name, row["text"][:500])
        assert not any(text in row["text"] for text in absent), page.name
        info = meta(row)
        assert info.pop("extraction_seconds") >= 0 and info.pop("warc_record_id").startswith("<urn:uuid:")
        latin1 = page.name in LATIN1_HEADER
        assert info == {"content_type": page.content_type, "http_status": 200, "html_bytes": len(page.html),
                        "charset": "windows-1252" if latin1 else "utf-8",
                        "extractor": "trafilatura", "extractor_version": trafilatura.__version__}
    # Records that are not pages are counted and said, not quarantined.
    [message] = [r.getMessage() for r in caplog.records if "not documents" in r.getMessage()]
    assert message.endswith(f"{2 + 2 * len(pages)} records that are not documents skipped: "
                            f"{len(pages)} metadata records, 1 non-HTML responses, {len(pages)} request records, "
                            "1 warcinfo records")


def test_auto_detects_warc_and_wet_by_name_and_format_names_them(tmp_path, pages):
    names = {"a.warc": "warc", "b.warc.gz": "warc", "c.wet": "wet", "d.wet.gz": "wet",
             "CC-MAIN-x.warc.wet.gz": "wet"}
    for name in names:
        write_warc(tmp_path / name, lambda writer: [writer.create_warcinfo_record("", {"software": "t"})])
    (tmp_path / "e.warc.wat.gz").write_bytes(b"")  # metadata archives are not read
    shards = discover_shards(InputSpec(paths=[str(tmp_path)]))
    assert {os.path.basename(s.path): s.format for s in shards} == names
    crawl_file = tmp_path / "crawl.dat"
    write_warc(crawl_file, crawl(pages[:1]), gzipped=True)  # the content decides the compression
    shard, result = read(crawl_file, format="warc")
    assert shard.format == "warc" and [r["url"] for r in result.rows()] == [pages[0].url]


def test_a_wet_file_is_one_document_per_conversion_record(tmp_path, sample_data):
    texts = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").read_text().splitlines()[:5]]
    bodies = [text.encode() for text in texts] + [b"caf\xe9 latin-1", b"  \n"]

    def records(writer: WARCWriter):
        yield writer.create_warcinfo_record("c.warc.wet.gz", {"software": "thresher tests"})
        for i, body in enumerate(bodies):
            yield writer.create_warc_record(
                f"https://example.org/{i}", "conversion", payload=io.BytesIO(body), length=len(body),
                warc_content_type="text/plain",
                warc_headers_dict={"WARC-Date": DATE, "WARC-Refers-To": f"<urn:uuid:{i:08d}>"})

    path = tmp_path / "CC-MAIN-2019-35.warc.wet.gz"
    write_warc(path, records)
    shard, result = read(path)
    assert shard.format == "wet" and result.rows_in == len(bodies)
    rows = result.rows()
    assert [r["text"] for r in rows] == texts and [r["source_row"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["url"] == "https://example.org/0" and rows[0]["timestamp"].year == 2019
    info = meta(rows[0])
    assert info.pop("warc_record_id").startswith("<urn:uuid:")
    assert info == {"content_type": "text/plain", "charset": "utf-8", "warc_refers_to": "<urn:uuid:00000000>"}
    assert [(q["source_row"], q["reason"]) for q in result.quarantined()] == [(6, "invalid_utf8"), (7, "empty_text")]
    assert result.quarantined()[0]["raw"].endswith(b"caf\xe9 latin-1")


# ------------------------------------------------------------------------------------------
# Pages that cannot be extracted


def test_a_page_that_hangs_the_extractor_is_quarantined_and_the_rest_ingests(tmp_path, pages):
    def records(writer: WARCWriter):
        yield response(writer, pages[0].url, pages[0].html, pages[0].content_type)
        yield response(writer, "https://example.org/tables", slow_page(), "text/html")
        yield response(writer, pages[1].url, pages[1].html, pages[1].content_type)

    path = tmp_path / "hang.warc.gz"
    write_warc(path, records)
    spec = InputSpec(paths=[str(path)])
    [shard] = discover_shards(spec)
    # Read as ingest reads it: in a worker thread of a thread pool, where signal.alarm cannot reach.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(Read, shard, spec, IngestConfig(extraction_time_limit_s=1)).result()
    assert [r["url"] for r in result.rows()] == [pages[0].url, pages[1].url]
    [hung] = result.quarantined()
    assert (hung["source_row"], hung["reason"], hung["n_rows"]) == (1, "extraction_timeout", 1)
    assert "time limit of 1 s" in hung["detail"]
    assert hung["raw"].startswith(b"WARC/1.0\r\n") and b"<table><tr><td>" in hung["raw"]
    assert len(hung["raw"]) <= 64 << 10


def test_the_time_limit_holds_in_a_thread_and_a_dead_extractor_is_replaced(pages):
    page = pages[0]
    extractor = HtmlExtractor(time_limit=1.0)
    with ThreadPoolExecutor(1) as pool, contextlib.closing(extractor):
        first = pool.submit(extractor.extract, page.html, page.content_type, page.url).result()
        started = time.monotonic()
        hung = pool.submit(extractor.extract, slow_page(), "text/html", None).result()
        assert isinstance(hung, FileProblem) and hung.reason == "extraction_timeout"
        assert 1.0 <= time.monotonic() - started < 2.5
        again = pool.submit(extractor.extract, page.html, page.content_type, page.url).result()
        assert again["text"] == first["text"]

        # An extractor process that dies (killed here, as the OOM killer would) fails that page only.
        extractor.time_limit = 60
        dying = pool.submit(extractor.extract, slow_page(), "text/html", None)
        [child] = extractor_processes()
        time.sleep(0.5)
        os.kill(child.pid, signal.SIGKILL)
        died = dying.result()
        assert isinstance(died, FileProblem) and died.reason == "extraction_failed"
        assert "died" in died.detail and "-9" in died.detail
        assert pool.submit(extractor.extract, page.html, page.content_type, page.url).result()["text"] == first["text"]
    assert extractor_processes() == []  # closing ends the process


def test_empty_and_oversized_pages_are_quarantined(tmp_path, pages):
    wikipedia = next(page for page in pages if page.name == "en.wikipedia.org.tsne.html")
    szorc = next(page for page in pages if page.name == "gregoryszorc.com.python3.html")

    gallery = b"<html><head><title>Gallery</title></head><body><img src='a.jpg'><img src='b.jpg'></body></html>"

    def records(writer: WARCWriter):
        yield response(writer, "https://example.org/gallery", gallery, "text/html")
        compressed = gzip.compress(pages[0].html)
        yield response(writer, pages[0].url, compressed, "text/html", ("Content-Encoding", "gzip"))
        yield response(writer, wikipedia.url, wikipedia.html, "text/html")  # 109 kB of HTML
        yield response(writer, szorc.url, szorc.html, "text/html")  # 39 kB of text

    path = tmp_path / "bad.warc"
    write_warc(path, records)
    # HTML may hold 4 x 8 KiB + 64 KiB = 96 KiB, text 8 KiB.
    _, result = read(path, IngestConfig(max_doc_bytes=8 << 10))
    assert [r["url"] for r in result.rows()] == [pages[0].url]  # its gzip Content-Encoding is undone
    assert meta(result.rows()[0])["html_bytes"] == len(pages[0].html)
    empty, html, text = result.quarantined()
    assert [(q["source_row"], q["reason"]) for q in (empty, html, text)] == [
        (0, "empty_extraction"), (2, "oversized"), (3, "oversized")]
    assert empty["raw"].endswith(gallery) and "found no main text" in empty["detail"]
    assert f"payload of {len(wikipedia.html)} bytes" in html["detail"] and len(html["raw"]) == 64 << 10
    assert "> max_doc_bytes=8192" in text["detail"]


def test_a_file_that_is_not_warc_is_quarantined_whole(tmp_path):
    path = tmp_path / "notes.warc"
    path.write_text('{"text": "a JSON line, not a WARC record"}\n')
    _, result = read(path)
    [row] = result.quarantined()
    assert row["reason"] == "unknown_format" and "not a WARC file" in row["detail"]


# ------------------------------------------------------------------------------------------
# Archives cut short


@pytest.mark.parametrize("name", ["cut.warc.gz", "cut.warc"])
@pytest.mark.parametrize("inside", ["response", "request"])
def test_a_cut_archive_keeps_the_records_before_the_cut(tmp_path, pages, name, inside):
    path = tmp_path / name
    ends = write_warc(path, crawl(pages[:4]))
    # Records: 0 warcinfo, then per page request (1 + 3i), response (2 + 3i), metadata (3 + 3i).
    cut_record = 8 if inside == "response" else 7  # the third page's response, or its request
    data = path.read_bytes()
    path.write_bytes(data[: (ends[cut_record - 1] + ends[cut_record]) // 2])
    _, result = read(path)
    assert [r["url"] for r in result.rows()] == [page.url for page in pages[:2]]
    [cut] = result.quarantined()
    assert (cut["reason"], cut["n_rows"], cut["file_bytes"]) == ("truncated_archive", 1, path.stat().st_size)
    assert "the rest of the file is unreadable" in cut["detail"]
    if inside == "response":  # the cut record is the rest; in an uncompressed file, at its own offset
        assert cut["source_row"] == cut_record and f"at record {cut_record} " in cut["detail"]
        assert name.endswith(".gz") or cut["byte_offset"] == ends[cut_record - 1]
    assert result.rows_in == 3  # two documents + the lost rest


# ------------------------------------------------------------------------------------------
# The command and the extra


@pytest.mark.usefixtures("prefect_harness")
def test_thresher_ingest_writes_the_documents_of_a_warc_file(tmp_path, pages):
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, crawl(pages))
    run = tmp_path / "run"
    out = thresher("ingest", str(run), str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    documents = pq.read_table(run / "documents").to_pylist()
    assert sorted(d["url"] for d in documents) == sorted(page.url for page in pages)
    assert all(json.loads(d["meta_json"])["extractor"] == "trafilatura" for d in documents)
    [stats] = [json.loads(p.read_text()) for p in (run / "stats" / "ingest").glob("*.json")]
    assert (stats["format"], stats["rows_in"], stats["rows_written"], stats["rows_quarantined"]) == (
        "warc", len(pages), len(pages), 0)


def test_without_the_web_extra_planning_fails_naming_the_install(tmp_path, pages, monkeypatch):
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, crawl(pages[:1]))
    monkeypatch.setitem(sys.modules, "trafilatura", None)  # what find_spec reports for a missing package
    with pytest.raises(InputError, match=r"need trafilatura .*pip install 'thresher\[web\]'"):
        discover_shards(InputSpec(paths=[str(path)]))


@pytest.mark.usefixtures("prefect_harness")
def test_thresher_ingest_without_the_extra_is_one_error_line(tmp_path, pages):
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, crawl(pages[:1]))
    hide = "import sys; sys.modules['trafilatura'] = None; from thresher.cli import app; app(prog_name='thresher')"
    out = thresher("ingest", str(tmp_path / "run"), str(path), script=[sys.executable, "-c", hide])
    assert_one_line_error(out, "pip install 'thresher[web]'")


def test_reading_stops_its_extractor_process_when_abandoned(tmp_path, pages):
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, crawl(pages))
    spec = InputSpec(paths=[str(path)])
    [shard] = discover_shards(spec)
    batches = read_shard(shard, spec, IngestConfig(batch_rows=1))
    next(batches)
    assert len(extractor_processes()) == 1
    batches.close()
    assert extractor_processes() == []
