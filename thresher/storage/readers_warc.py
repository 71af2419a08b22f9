"""WARC and WET inputs (`.warc`, `.warc.gz`; `.wet`, `.wet.gz`, `.warc.wet.gz`), one record at a
time, parsed by warcio; HTML becomes main text through trafilatura, under a time limit per page.

A WARC `response` record with an HTML content type (text/html, application/xhtml+xml; the HTTP
header's, else WARC-Identified-Payload-Type) is a document: the main text trafilatura extracts
(favor_precision off, no comments), `WARC-Target-URI` as url, `WARC-Date` as timestamp, and in
meta_json the content type, HTTP status, WARC-Record-ID, the charset that decoded the HTML, extractor
and version, extraction seconds and HTML bytes. A WET `conversion` record is a document as it is,
less the extractor's metadata; `thresher.storage.readers` checks both (empty, oversized). Other
records (requests, metadata, warcinfo, revisits, non-HTML responses) are not bad data: like blank
JSON lines they are neither rows in nor quarantined, but `source_row` counts them, so doc_ids stay
stable. ReadBatch has no channel for skip counts: a file's counts by kind are logged (INFO).

Quarantined with the record's headers and payload start: `extraction_timeout`, `extraction_failed`
(the extractor raised or died, or the HTTP body cannot be decoded), `empty_extraction`, `oversized`
(HTML over 4 x max_doc_bytes + 64 KiB is counted, never held; text over max_doc_bytes), `invalid_utf8`
(WET). A cut archive keeps the records before the cut and ends with one `truncated_archive` row (a
`.gz` is read through Python's gzip, which reports a cut; warcio alone takes it for the end); data
that stops being WARC ends it with one `unreadable_remainder` row.

The time limit (`ingest.extraction_time_limit_s`) needs a child process: lxml can stay busy in C for
minutes on a pathological page, ingest reads shards in Prefect's thread pool (or Dask and process
workers), signal.alarm works only in a main thread, and a thread cannot be stopped from outside. So
each file being read gets one extractor process, fed a page at a time over a pipe; the reader waits
up to the limit for each answer, and on timeout kills the process and starts another for the next
page. A subprocess, not multiprocessing: no fork of a parent full of threads, daemonic workers may
start it, and it ends with its parent (it reads the parent's pipe). Its cost: about a second to start
(imports and a warm-up page, outside every page's limit) per file and per timeout, and a pipe copy
per page; warcio's parsing takes under 2 % of the extraction's time (bench/warc_throughput.py).
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import gzip
import io
import logging
import os
import re
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

import orjson

from thresher.config_base import IngestConfig
from thresher.schema import QuarantineReason
from thresher.storage.file_errors import DECOMPRESSION_ERRORS, InputError
from thresher.storage.formats import FileProblem, open_binary
from thresher.storage.readers_text import RAW_LIMIT, Record

logger = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_EXTRACTOR_START_SECONDS = 120.0  # its imports and warm-up page: generous, and outside every page's limit
_READ_CHUNK = 1 << 20
_FRAME_SIZES = struct.Struct("<II")  # a frame: the sizes of its JSON header and its body, then both
_CHARSET = rb"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)"""
_HTTP_CHARSET = re.compile(_CHARSET, re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?" + _CHARSET, re.IGNORECASE)


def web_records(path: str, kind: str, ingest: IngestConfig) -> Iterator[Record]:
    """The documents of a WARC (`kind` "warc") or WET ("wet") file as reader records; `byte_offset`
    is the record's offset in the decompressed archive."""
    from warcio.archiveiterator import WARCIterator
    from warcio.exceptions import ArchiveLoadFailed
    from warcio.statusandheaders import StatusAndHeadersParserException

    # HTML may hold 4 x max_doc_bytes, as a JSON line; a text 64 KiB more, so the converter says its size.
    limit = ingest.max_doc_bytes * 4 + RAW_LIMIT if kind == "warc" else ingest.max_doc_bytes + RAW_LIMIT
    skipped: Counter[str] = Counter()
    row = offset = 0
    record = problem = None
    extractor = HtmlExtractor(ingest.extraction_time_limit_s) if kind == "warc" else None
    with _open_archive(path) as stream, contextlib.closing(extractor) if extractor else contextlib.nullcontext():
        archive = WARCIterator(stream)  # WARC only: warcio would take other text for ARC records
        try:
            for record in archive:
                offset = archive.offset
                skip = _skip_reason(record, kind)
                if skip is not None:
                    skipped[skip] += 1
                    row += 1
                    continue
                body, size = _read_to_end(record.raw_stream, limit)
                if _cut_inside(record):
                    break
                value = (_oversized(size, limit) if size > limit
                         else _html_document(record, body, limit, extractor) if kind == "warc"
                         else _text_document(record, body))
                yield row, offset, _record_bytes(record, body), value
                row += 1
        except DECOMPRESSION_ERRORS as exc:
            stream.error = exc
        except (ArchiveLoadFailed, StatusAndHeadersParserException) as exc:
            if row == 0:
                raise InputError(f"{path}: not a WARC file: {_one_line(exc)}",
                                 QuarantineReason.UNKNOWN_FORMAT) from None
            problem = FileProblem(QuarantineReason.UNREADABLE_REMAINDER,
                                  f"no WARC record at record {row} (decompressed byte {archive.offset}): "
                                  f"{_one_line(exc)}; the rest of the file is unreadable")
        if problem is None and stream.error is not None:
            if row == 0:
                raise InputError(f"{path}: cannot decompress: {stream.error}")
            problem = _truncation(row, archive.offset, f"{type(stream.error).__name__}: {stream.error}")
        elif problem is None and (cut := _cut_end(archive, record, stream)):
            problem = _truncation(row, archive.offset, cut)
    if problem is not None:  # where the unread rest starts
        yield row, archive.offset, None, problem
    if skipped:
        logger.info("%s: %d records that are not documents skipped: %s", path, sum(skipped.values()),
                    ", ".join(f"{count} {what}" for what, count in sorted(skipped.items())))


class _WatchedStream:
    """The decompressed archive as warcio reads it, keeping a decompression error (warcio takes an EOFError
    between two records for the archive's end). Reads return what is decompressed so far: a read that
    meets a cut loses its data, which may hold whole records before it."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read1(size)
        except DECOMPRESSION_ERRORS as exc:
            self.error = exc
            raise

    def tell(self) -> int:
        return self.stream.tell()


@contextlib.contextmanager
def _open_archive(path: str) -> Iterator[_WatchedStream]:
    with open_binary(path) as raw:  # a local file or a remote object (range requests)
        gzipped = raw.read(2) == b"\x1f\x8b"  # the content decides, not the name
        raw.seek(0)
        with gzip.open(raw, "rb") if gzipped else contextlib.nullcontext(raw) as stream:
            yield _WatchedStream(stream)


def _skip_reason(record: Any, kind: str) -> str | None:
    """What a record that is not a document is (for the skip counts), or None for a document."""
    if record.rec_type != ("response" if kind == "warc" else "conversion"):
        return f"{record.rec_type} records"
    if kind == "warc" and (_content_type(record) or "").split(";")[0].strip().lower() not in HTML_TYPES:
        return "non-HTML responses"
    return None


def _content_type(record: Any) -> str | None:
    """A response's HTTP Content-Type (else Common Crawl's identified one); a WET conversion's own."""
    if record.rec_type == "conversion":
        return record.rec_headers.get_header("Content-Type")
    declared = record.http_headers.get_header("Content-Type") if record.http_headers else None
    return declared or record.rec_headers.get_header("WARC-Identified-Payload-Type")


def _read_to_end(stream: Any, limit: int) -> tuple[bytes, int]:
    """The first `limit` + 1 bytes of `stream` and its whole size: the rest is counted, not held."""
    head: list[bytes] = []
    kept = size = 0
    while chunk := stream.read(_READ_CHUNK):
        size += len(chunk)
        if kept <= limit:
            head.append(chunk[: limit + 1 - kept])
            kept += len(head[-1])
    return b"".join(head), size


def _cut_inside(record: Any) -> bool:
    """Whether an (uncompressed) archive ended before the record's Content-Length."""
    return getattr(record.raw_stream, "limit", 0) > 0


def _cut_end(archive: Any, record: Any, stream: _WatchedStream) -> str | None:
    """How an archive warcio read to its end was cut, if it was: inside the last record's body (warcio
    reads a skipped record to its end before the next) or inside its headers (then no record at all)."""
    if record is not None and _cut_inside(record):
        return "the archive ends inside this record"
    if archive.offset < stream.tell():
        return f"its last {stream.tell() - archive.offset} bytes are not a whole record"
    return None


def _truncation(row: int, offset: int, cause: str) -> FileProblem:
    return FileProblem(QuarantineReason.TRUNCATED_ARCHIVE, f"archive cut short or corrupt at record {row} "
                       f"(decompressed byte {offset}): {cause}; the rest of the file is unreadable")


def _oversized(size: int, limit: int) -> FileProblem:
    return FileProblem(QuarantineReason.OVERSIZED, f"payload of {size} bytes, more than {limit} (4 x max_doc_bytes "
                       f"+ 64 KiB for HTML, max_doc_bytes + 64 KiB for text); raw keeps its first {RAW_LIMIT} bytes")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def _record_bytes(record: Any, body: bytes) -> bytes:
    """What a quarantine row keeps of a record: its WARC and HTTP headers and its payload's start."""
    headers = record.rec_headers.to_bytes() + (record.http_headers.to_bytes() if record.http_headers else b"")
    return headers + body[:RAW_LIMIT]


def _record_fields(record: Any) -> dict[str, Any]:
    """The columns and metadata of a record's document, whatever its kind."""
    headers = record.rec_headers
    fields = {"url": headers.get_header("WARC-Target-URI"), "timestamp": headers.get_header("WARC-Date"),
              "content_type": _content_type(record), "warc_record_id": headers.get_header("WARC-Record-ID")}
    if record.http_headers and record.rec_type == "response":
        status = record.http_headers.get_statuscode()
        fields["http_status"] = int(status) if status and status.isdigit() else status
    # On some records only: a payload the crawler cut (at 1 MiB in Common Crawl); a WET text's response.
    for key, header in (("warc_truncated", "WARC-Truncated"), ("warc_refers_to", "WARC-Refers-To")):
        if value := headers.get_header(header):
            fields[key] = value
    return fields


def _text_document(record: Any, body: bytes) -> dict[str, Any] | FileProblem:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return FileProblem(QuarantineReason.INVALID_UTF8, f"not valid UTF-8: {bad}")
    return {**_record_fields(record), "text": text, "charset": "utf-8"}


def _html_document(record: Any, body: bytes, limit: int, extractor: HtmlExtractor) -> dict[str, Any] | FileProblem:
    try:
        html, size = _decoded_body(record, body, limit)
    except Exception as exc:  # any decoder's error: the record is at fault, not the archive
        return FileProblem(QuarantineReason.EXTRACTION_FAILED,
                           f"cannot decode the HTTP body: {type(exc).__name__}: {_one_line(exc)}")
    if size > limit:
        return _oversized(size, limit)
    fields = _record_fields(record)
    extracted = extractor.extract(html, fields["content_type"], fields["url"])
    if isinstance(extracted, FileProblem):
        return extracted
    if not extracted["text"] or extracted["text"].isspace():
        return FileProblem(QuarantineReason.EMPTY_EXTRACTION,
                           f"{extracted['extractor']} found no main text in {len(html)} bytes of HTML")
    return {**fields, **extracted, "html_bytes": len(html)}


def _decoded_body(record: Any, body: bytes, limit: int) -> tuple[bytes, int]:
    """The HTTP body without its transfer and content encodings: its first `limit` + 1 bytes, its size."""
    headers = record.http_headers
    if not headers or not (headers.get_header("Content-Encoding") or headers.get_header("Transfer-Encoding")):
        return body, len(body)
    # warcio's own decoding, over the bytes already read: an error here is the record's, not the archive's.
    decoding = copy.copy(record)
    decoding.raw_stream = io.BytesIO(body)
    return _read_to_end(decoding.content_stream(), limit)


class HtmlExtractor:
    """trafilatura in a child process, one page at a time, each under `time_limit` seconds; the
    process starts on first use and again after a timeout or a crash."""

    def __init__(self, time_limit: float):
        self.time_limit = time_limit
        self._process: subprocess.Popen | None = None
        self._extractor: dict[str, str] = {}

    def extract(self, html: bytes, content_type: str | None, url: str | None) -> dict[str, Any] | FileProblem:
        """The page's text, charset, extraction seconds, extractor and extractor_version, or why not."""
        process = self._process or self._start()
        name = self._extractor["extractor"]
        try:
            _write_frame(process.stdin, {"content_type": content_type, "url": url}, html)
            reply = _read_frame(process.stdout.fileno(), time.monotonic() + self.time_limit)
        except TimeoutError:
            self.close()
            return FileProblem(QuarantineReason.EXTRACTION_TIMEOUT, f"{name} took longer than the time limit of "
                               f"{self.time_limit:g} s (extraction_time_limit_s) on {len(html)} bytes of HTML; "
                               "its process was restarted")
        except BrokenPipeError:  # it died before it read the page
            reply = None
        if reply is None or "error" in reply[0]:
            cause = reply[0]["error"] if reply else f"its process died (exit status {self.close()}); restarted"
            return FileProblem(QuarantineReason.EXTRACTION_FAILED, f"{name}: {cause}")
        return {**reply[0], **self._extractor}

    def _start(self) -> subprocess.Popen:
        self._process = process = subprocess.Popen(
            [sys.executable, "-c", "from thresher.storage.readers_warc import serve_extractions; serve_extractions()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        with contextlib.suppress(TimeoutError):
            if ready := _read_frame(process.stdout.fileno(), time.monotonic() + _EXTRACTOR_START_SECONDS):
                self._extractor = ready[0]
                return process
        raise InputError(f"the HTML extractor process did not start (exit status {self.close()}; see its error)")

    def close(self) -> int | None:
        """Kill the process (a page may hold it busy, and it keeps nothing) and return its exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        with process:  # closes its pipes and waits for it
            process.kill()
        return process.returncode


def _write_frame(stream: IO[bytes], header: dict, body: bytes = b"") -> None:
    encoded = orjson.dumps(header)
    stream.write(_FRAME_SIZES.pack(len(encoded), len(body)) + encoded)
    stream.write(body)
    stream.flush()


def _read_frame(fd: int, deadline: float | None) -> tuple[dict, bytes] | None:
    """One frame from `fd`, or None when the other side closed it; TimeoutError past `deadline`."""
    sizes = _read_exactly(fd, _FRAME_SIZES.size, deadline)
    if sizes is None:
        return None
    header, body = (_read_exactly(fd, size, deadline) for size in _FRAME_SIZES.unpack(sizes))
    return None if header is None or body is None else (orjson.loads(header), body)


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes | None:
    parts: list[bytes] = []
    while size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        part = os.read(fd, min(size, _READ_CHUNK))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def serve_extractions() -> None:
    """The extractor process: extract each page its parent sends, until the parent closes the pipe."""
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # a page's trouble goes back in the reply
    # Frames go out on a private copy of stdout; anything a library prints lands on stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    trafilatura.extract("<html><body><p>A page to load every lazy import before the first real one.</p></body></html>")
    _write_frame(replies, {"extractor": "trafilatura", "extractor_version": trafilatura.__version__})
    while (request := _read_frame(sys.stdin.fileno(), None)) is not None:
        (header, html), started = request, time.perf_counter()
        try:
            page, charset = _decode_html(html, header["content_type"])
            text = trafilatura.extract(page, url=header["url"], favor_precision=False, include_comments=False)
            reply = {"text": text, "charset": charset}
        except Exception as exc:  # the page's failure is reported, and the process goes on
            reply = {"error": f"{type(exc).__name__}: {_one_line(exc)}"}
        _write_frame(replies, {**reply, "extraction_seconds": round(time.perf_counter() - started, 4)})


def _decode_html(html: bytes, content_type: str | None) -> tuple[str, str]:
    """The page as text and the charset that decoded it; UTF-8 with replacement characters
    ("utf-8-replaced") when no candidate decodes it."""
    for charset in _charsets(html, content_type):
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            return html.decode(charset), charset.lower()
    return html.decode("utf-8", errors="replace"), "utf-8-replaced"


def _charsets(html: bytes, content_type: str | None) -> Iterator[str]:
    """The charsets to try: the HTTP header's, a <meta> tag's, then trafilatura's guesses (UTF-8 when
    valid), which are costly and so only made when the declared ones fail (a lazy generator)."""
    from trafilatura.utils import detect_encoding

    for found in (_HTTP_CHARSET.search((content_type or "").encode("latin-1", "replace")),
                  _META_CHARSET.search(html[:4096])):
        if found:
            charset = found.group(1).decode("ascii")
            with contextlib.suppress(LookupError):  # as browsers do (WHATWG): Latin-1 and ASCII mean windows-1252
                if codecs.lookup(charset).name in ("iso8859-1", "ascii"):
                    yield "windows-1252"
            yield charset
    yield from detect_encoding(html)
