"""Inputs in object storage, against a real S3 server (moto's, over HTTP on 127.0.0.1): the same
corpus ingested from s3:// and from local disk gives the same tables; listing is one request per
prefix and fingerprints come from the listing's metadata; broken, vanished and changed objects are
quarantined, not fatal; throttling is retried by botocore; no credential reaches the run directory or
the command's output. memory:// checks the mechanics that do not need S3."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
import sys
import uuid
import zipfile
from collections import Counter
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from tests.storage.s3_server import ThrottlingProxy, moto_s3_server
from tests.storage.test_warc import Page, crawl, write_warc
from thresher.config import IngestConfig, InputSpec
from thresher.schema import QuarantineReason, make_doc_id
from thresher.storage import remote
from thresher.storage.file_errors import StoreUnavailable
from thresher.storage.formats import KNOWN_EXTENSIONS, expand_inputs, file_fingerprint
from thresher.storage.ingest import ingest_shard, retire_superseded
from thresher.storage.readers import InputError, discover_shards
from thresher.storage.run_dir import RunDir

SECRET = f"dummy-secret-{uuid.uuid4().hex}"  # the environment's secret key: must appear nowhere
URL_SECRET = f"url-secret-{uuid.uuid4().hex}"  # one written into a URL: stripped before use


@pytest.fixture(scope="module")
def endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    with moto_s3_server() as url:
        yield url


@pytest.fixture
def s3(endpoint, monkeypatch):
    """The environment a user sets (dummy keys, the endpoint), and a client with a fresh bucket."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.bucket = f"bkt-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=client.bucket)
    return client


def upload(client, folder: Path, prefix: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.put_object(Bucket=client.bucket, Key=f"{prefix}/{path.relative_to(folder).as_posix()}",
                          Body=path.read_bytes())


@pytest.fixture(scope="module")
def corpus(sample_data, tmp_path_factory) -> Path:
    """Real samples in every container the readers stream from a file object: C4 json.gz, Parquet
    (several row groups), CSV.gz, Arrow IPC, an Alpaca JSON array, a WARC; a bad line, a hidden file
    and a file of an unknown kind."""
    root = tmp_path_factory.mktemp("corpus")
    lines = (sample_data / "c4_sample.jsonl").read_bytes().splitlines(keepends=True)
    (root / "c4").mkdir()
    (root / "c4" / "c4-train.00000.json.gz").write_bytes(gzip.compress(b"".join(lines[:120]) + b"{broken\n", mtime=0))
    table = pa.Table.from_pylist([json.loads(line) for line in lines[120:]])
    pq.write_table(table.slice(0, 50), root / "c4" / "part-1.parquet", row_group_size=16)
    pcsv.write_csv(table.slice(50), root / "c4" / "part-2.csv")
    (root / "c4" / "part-2.csv.gz").write_bytes(gzip.compress((root / "c4" / "part-2.csv").read_bytes(), mtime=0))
    (root / "c4" / "part-2.csv").unlink()
    feather.write_feather(table.slice(60), root / "c4" / "part-3.arrow", compression="uncompressed")
    (root / "c4" / ".part-4.json").write_bytes(lines[0])
    (root / "c4" / "README.md").write_text("not data\n")
    (root / "instructions").mkdir()
    (root / "instructions" / "alpaca.json").write_bytes((sample_data / "alpaca_sample.json").read_bytes())
    with zipfile.ZipFile(sample_data / "warc" / "pages.zip") as archive:
        pages = [Page(item["file"], item["url"], archive.read(item["file"]))
                 for item in json.loads(archive.read("index.json"))[:3]]
    (root / "web").mkdir()
    write_warc(root / "web" / "crawl.warc.gz", crawl(pages))
    return root


def ingest(run_root: Path, spec: InputSpec) -> list[dict]:
    run = RunDir(run_root)
    if not run.exists():
        run.init()
    return [ingest_shard(run, shard, spec, IngestConfig()) for shard in discover_shards(spec)]


def rows(run_root: Path, table: str) -> list[dict]:
    """A table's rows without doc_id (it derives from the fingerprint), sorted by source and row."""
    parts = sorted((run_root / table).glob("*.parquet"))
    found = [row for part in parts for row in pq.read_table(part).to_pylist()]
    for row in found:
        row.pop("doc_id", None)
        if row.get("meta_json"):  # a WARC page's extraction time is not the same twice
            row["meta_json"] = {k: v for k, v in json.loads(row["meta_json"]).items() if k != "extraction_seconds"}
    return sorted(found, key=lambda row: (row["source"], row["source_row"] if row["source_row"] is not None else -1))


def s3_calls(caplog) -> Counter:
    """The S3 API calls s3fs made, by operation (its DEBUG log names each one)."""
    return Counter(r.getMessage().split()[1] for r in caplog.records
                   if r.name == "s3fs" and r.getMessage().startswith("CALL: "))


# ------------------------------------------------------------------------------------------
# The same corpus, local and in S3


def test_an_s3_glob_ingests_the_same_tables_as_the_local_files(s3, corpus, tmp_path, caplog):
    upload(s3, corpus, "corpora/v1")
    local = ingest(tmp_path / "local", InputSpec(paths=[f"{corpus}/**"]))
    caplog.set_level(logging.DEBUG, logger="s3fs")
    spec = InputSpec(paths=[f"s3://{s3.bucket}/corpora/v1/**"])
    remote_stats = ingest(tmp_path / "remote", spec)

    assert len(local) == len(remote_stats) == 6
    for table in ("documents", "instructions", "quarantine"):
        assert rows(tmp_path / "remote", table) == rows(tmp_path / "local", table), table
    key = ("format", "table", "rows_in", "rows_written", "rows_quarantined", "quarantine_reasons", "bytes_in")
    by_name = {Path(s["source"]).name: s for s in local}
    for stats in remote_stats:
        assert stats["source"].startswith(f"s3://{s3.bucket}/corpora/v1/")
        assert {k: stats[k] for k in key} == {k: by_name[Path(stats["source"]).name][k] for k in key}
        assert stats["rows_in"] == stats["rows_written"] + stats["rows_quarantined"]
    assert sum(s["rows_written"] for s in remote_stats) > 300
    # doc_ids are the local rule over the remote fingerprint.
    [c4] = [s for s in remote_stats if s["source"].endswith(".json.gz")]
    documents = pq.read_table(tmp_path / "remote" / "documents" / f"part-{c4['shard_id']}.parquet").to_pylist()
    assert [d["doc_id"] for d in documents] == [make_doc_id(c4["fingerprint"], d["source_row"]) for d in documents]
    # The directories' rules hold in the bucket: a hidden file and an unknown kind are passed over.
    local_skipped = {Path(s.path).name: s.reason for s in expand_inputs(InputSpec(paths=[str(corpus)]))[1]}
    remote_skipped = {Path(s.path).name: s.reason for s in expand_inputs(spec)[1]}
    assert remote_skipped == local_skipped == {".part-4.json": "hidden file",
                                               "README.md": "unknown extension (not one of the known input formats)"}
    # Planning listed the prefix once and fingerprinted every object from that listing (no HEAD per object).
    caplog.clear()
    discover_shards(spec)
    calls = s3_calls(caplog)
    assert calls["list_objects_v2"] == 1 and calls["head_object"] == 0, calls


def test_a_prefix_a_literal_object_and_a_missing_one(s3, corpus, tmp_path):
    upload(s3, corpus, "data")
    prefix = f"s3://{s3.bucket}/data/c4"
    folder = {p.rsplit("/", 1)[1] for p in expand_inputs(InputSpec(paths=[prefix]))[0]}
    assert folder == {"c4-train.00000.json.gz", "part-1.parquet", "part-2.csv.gz", "part-3.arrow"}
    # A literal object is read whatever its name; a literal that names nothing is a one-line error.
    hidden = f"{prefix}/.part-4.json"
    assert expand_inputs(InputSpec(paths=[hidden]))[0] == [hidden]
    with pytest.raises(InputError, match=rf"no such file: s3://{s3.bucket}/data/c4/missing.json.gz"):
        expand_inputs(InputSpec(paths=[f"{prefix}/missing.json.gz"]))
    with pytest.raises(InputError, match="matches no input file"):
        expand_inputs(InputSpec(paths=[f"{prefix}/*.txt"]))
    with pytest.raises(InputError, match="cannot list: no such bucket or prefix"):
        expand_inputs(InputSpec(paths=[f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x/**"]))


# ------------------------------------------------------------------------------------------
# Fingerprints from metadata, resume


def test_the_fingerprint_follows_the_objects_content_and_a_second_ingest_is_a_no_op(s3, sample_data, tmp_path):
    data = gzip.compress((sample_data / "c4_sample.jsonl").read_bytes(), mtime=0)
    key = "c4/c4-train.00000.json.gz"
    url = f"s3://{s3.bucket}/{key}"
    s3.put_object(Bucket=s3.bucket, Key=key, Body=data)
    spec = InputSpec(paths=[f"s3://{s3.bucket}/c4/**"])
    [first] = ingest(tmp_path / "run", spec)
    assert first["rows_written"] == 200 and not first["skipped"]
    assert first["fingerprint"] == file_fingerprint(url) != file_fingerprint(str(_local(tmp_path, data)))

    [again] = ingest(tmp_path / "run", spec)
    assert again["skipped"] and again["shard_id"] == first["shard_id"]
    s3.put_object(Bucket=s3.bucket, Key=key, Body=data)  # the same bytes uploaded again: the same input
    assert file_fingerprint(url) == first["fingerprint"]

    changed = gzip.compress(b"".join((sample_data / "c4_sample.jsonl").read_bytes().splitlines(True)[:150]), mtime=0)
    s3.put_object(Bucket=s3.bucket, Key=key, Body=changed)
    [redone] = ingest(tmp_path / "run", spec)
    assert redone["fingerprint"] == file_fingerprint(url) != first["fingerprint"]
    assert not redone["skipped"] and redone["rows_written"] == 150


def _local(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "local.json.gz"
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------
# Objects that break


def test_a_corrupt_a_vanished_and_a_changed_object_are_quarantined_and_counts_reconcile(s3, sample_data, tmp_path):
    good = gzip.compress((sample_data / "c4_sample.jsonl").read_bytes(), mtime=0)
    for name, body in (("good.json.gz", good), ("corrupt.json.gz", b"\x1f\x8b" + bytes(200)),
                       ("gone.json.gz", good[:-4] + b"gone"), ("changed.json.gz", good + b"\n")):
        s3.put_object(Bucket=s3.bucket, Key=f"in/{name}", Body=body)
    spec = InputSpec(paths=[f"s3://{s3.bucket}/in/*.json.gz"], format="c4")
    shards = {shard.path.rsplit("/", 1)[1]: shard for shard in discover_shards(spec)}
    assert len(shards) == 4
    # After planning: one object is deleted, one is overwritten (its planned content is gone).
    s3.delete_object(Bucket=s3.bucket, Key="in/gone.json.gz")
    s3.put_object(Bucket=s3.bucket, Key="in/changed.json.gz", Body=good + b"\n\n")
    run = RunDir(tmp_path / "run")
    run.init()
    stats = {name: ingest_shard(run, shard, spec, IngestConfig()) for name, shard in shards.items()}

    assert stats["good.json.gz"]["rows_written"] == 200 and not stats["good.json.gz"]["file_quarantined"]
    assert stats["corrupt.json.gz"]["file_quarantined"] == QuarantineReason.UNREADABLE_FILE
    assert stats["gone.json.gz"]["file_quarantined"] == QuarantineReason.FILE_VANISHED
    assert stats["changed.json.gz"]["file_quarantined"] == QuarantineReason.FILE_VANISHED
    for s in stats.values():
        assert s["rows_in"] == s["rows_written"] + s["rows_quarantined"]
    details = {row["source"]: row["detail"] for row in rows(run.root, "quarantine")}
    assert "cannot decompress" in details["corrupt.json.gz"]
    assert "changed after it was planned" in details["changed.json.gz"]
    # A new plan reads the changed object under its new fingerprint and retires the stale quarantine.
    replanned = discover_shards(spec)
    assert retire_superseded(run, replanned) == [stats["changed.json.gz"]["shard_id"]]
    [changed] = [ingest_shard(run, s, spec, IngestConfig()) for s in replanned if s.path.endswith("changed.json.gz")]
    assert changed["rows_written"] == 200 and not changed["file_quarantined"]


# ------------------------------------------------------------------------------------------
# Throttling


def test_throttled_requests_are_retried_by_botocore(s3, sample_data, endpoint, monkeypatch, caplog):
    s3.put_object(Bucket=s3.bucket, Key="t/c4.json.gz",
                  Body=gzip.compress((sample_data / "c4_sample.jsonl").read_bytes(), mtime=0))
    with ThrottlingProxy(endpoint, throttle=2) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        caplog.set_level(logging.DEBUG)
        [shard] = discover_shards(InputSpec(paths=[f"s3://{s3.bucket}/t/**"]))
        assert shard.problem is None and shard.format == "jsonl"
    assert proxy.throttled == 2 and proxy.requests > 2
    # botocore's standard/adaptive retry handler absorbed them (its log), not s3fs's own loop.
    retried = [r for r in caplog.records if r.name.startswith(("botocore.retries", "aiobotocore.retries"))
               and "Retry needed" in r.getMessage()]
    assert len(retried) == 2, [r.getMessage() for r in caplog.records if "etry" in r.getMessage()][:10]
    assert not [r for r in caplog.records if r.name == "s3fs" and "maybe retryable" in r.getMessage()]
    assert remote.filesystem("s3").config_kwargs["retries"] == {"total_max_attempts": 10, "mode": "adaptive"}


def test_a_store_unavailable_past_its_retries_fails_the_read_and_quarantines_nothing(
        s3, sample_data, endpoint, monkeypatch, tmp_path):
    """A good file the store would not serve (503 past botocore's retries) is not the file's fault:
    quarantined, it would be lost to the run for good, since a rerun skips a finished shard. The read
    fails with StoreUnavailable (one `error:` line from the command), writes nothing, and reading
    again once the store answers gives every row."""
    lines = (sample_data / "c4_sample.jsonl").read_bytes()
    s3.put_object(Bucket=s3.bucket, Key="u/c4.json.gz", Body=gzip.compress(lines, mtime=0))
    spec = InputSpec(paths=[f"s3://{s3.bucket}/u/**"])
    run = RunDir(tmp_path / "run")
    run.init()
    # One endpoint (and so one filesystem) throughout: the proxy, whose outage is switched on and off.
    with ThrottlingProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's attempts: 2 instead of thresher's 10
        [shard] = discover_shards(spec)  # planned while the store answers
        proxy.outage = True
        try:
            result = ingest_shard(run, shard, spec, IngestConfig())
        except StoreUnavailable as exc:
            assert re.search(r"did not answer after 2 attempts .*run the command again", str(exc)), exc
        else:
            pytest.fail(f"the read did not fail ({proxy.throttled} requests refused): {result}")
        assert proxy.throttled >= 2
        assert not list((tmp_path / "run").rglob("*.parquet")), "a shard or a quarantine row was written"
        proxy.outage = False
        result = ingest_shard(run, shard, spec, IngestConfig())
    assert result["rows_written"] == len(lines.splitlines()) and result["rows_quarantined"] == 0


# ------------------------------------------------------------------------------------------
# Credentials, the command


def test_credentials_in_a_url_are_stripped_before_anything_sees_them():
    spec = InputSpec(paths=[f"s3://AKIDUMMY:{URL_SECRET}/x+y@bucket/a@b/**", "hf://datasets/o/n@main/x"])
    assert spec.paths == ["s3://bucket/a@b/**", "hf://datasets/o/n@main/x"]
    assert remote.without_credentials("s3://bucket/user@example.org/x.json") == "s3://bucket/user@example.org/x.json"


@pytest.mark.usefixtures("prefect_harness")
def test_thresher_ingest_from_s3_records_no_secret(s3, corpus, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from tests.cli.test_errors import SCRIPT

    upload(s3, corpus / "c4", "cli")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200"}
    run = tmp_path / "run"
    url = f"s3://AKIDUMMY:{URL_SECRET}@{s3.bucket}/cli/**"
    out = subprocess.run([SCRIPT, "ingest", str(run), url, "--log-level", "DEBUG"], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    documents = pq.read_table(run / "documents")
    assert documents.num_rows == 120 + 50 + 30 + 20  # json.gz (one bad line quarantined), parquet, csv, arrow
    recorded = [p for p in run.rglob("*") if p.is_file()]
    assert recorded and f"s3://{s3.bucket}/cli/" in (run / "skipped_inputs.json").read_text()
    for text in (SECRET, URL_SECRET):
        assert text not in out.stdout + out.stderr
        assert not [p for p in recorded if text.encode() in p.read_bytes()], text



def test_thresher_validate_checks_s3_inputs(s3, corpus, tmp_path):
    from thresher.cli.validate import check_recipe

    upload(s3, corpus / "instructions", "v")
    recipe = tmp_path / "recipe.yaml"
    missing_bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    recipe.write_text(f"name: r\nrun_dir: run\ninputs:\n  - paths: [s3://{s3.bucket}/v/**]\n"
                      f"  - paths: [s3://{s3.bucket}/nothing/**, s3://{missing_bucket}/x/**]\n")
    problems, _summary = check_recipe(recipe, [])
    assert problems == [
        f"inputs.1.paths.0: s3://{s3.bucket}/nothing/**: matches no input file (globs and directories take only "
        + ", ".join(KNOWN_EXTENSIONS) + " files)",
        f"inputs.1.paths.1: s3://{missing_bucket}/x/**: cannot list: no such bucket or prefix"]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# Without S3: memory://, file://, the missing extra


def test_memory_and_file_urls_read_like_local_files(sample_data, tmp_path):
    import fsspec

    data = (sample_data / "c4_sample.jsonl").read_bytes()
    fs = fsspec.filesystem("memory")
    root = f"/thresher-{uuid.uuid4().hex[:8]}"
    fs.pipe(f"{root}/docs/c4.jsonl", data)
    local = tmp_path / "c4.jsonl"
    local.write_bytes(data)
    [in_memory] = discover_shards(InputSpec(paths=[f"memory://{root}/docs/**"]))
    [from_file_url] = discover_shards(InputSpec(paths=[f"file://{local}"]))
    [on_disk] = discover_shards(InputSpec(paths=[str(local)]))
    # memory:// reports no checksum: its fingerprint is the local one, read from its bytes.
    assert in_memory.fingerprint == from_file_url.fingerprint == on_disk.fingerprint
    assert from_file_url.path == on_disk.path == str(local)
    assert rows_of(in_memory) == rows_of(on_disk) == 200
    # zstd is checked for whole frames by seeking through the object, then streamed.
    import zstandard

    fs.pipe(f"{root}/zst/c4.jsonl.zst", zstandard.ZstdCompressor().compress(data))
    fs.pipe(f"{root}/zst/cut.jsonl.zst", zstandard.ZstdCompressor().compress(data)[:-5000])
    shards = {s.path.rsplit("/", 1)[1]: s for s in discover_shards(InputSpec(paths=[f"memory://{root}/zst"]))}
    assert rows_of(shards["c4.jsonl.zst"]) == 200
    assert 0 < rows_of(shards["cut.jsonl.zst"]) < 200
    assert "truncated_archive" in reasons_of(shards["cut.jsonl.zst"])


def rows_of(shard) -> int:
    from thresher.storage.readers import read_shard

    return sum(b.records.num_rows for b in read_shard(shard, InputSpec(paths=["x"]), IngestConfig()))


def reasons_of(shard) -> list[str]:
    from thresher.storage.readers import read_shard

    batches = read_shard(shard, InputSpec(paths=["x"]), IngestConfig())
    return [reason for batch in batches for reason in batch.quarantine["reason"].to_pylist()]


def test_s3_without_s3fs_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # what find_spec reports for a missing package
    monkeypatch.setattr(remote, "_filesystems", {})
    with pytest.raises(InputError, match=r"s3:// inputs need s3fs: pip install 'thresher\[s3\]'"):
        expand_inputs(InputSpec(paths=["s3://bucket/x/**"]))
