"""Inputs named by a Hugging Face dataset id, read from the local Hugging Face cache: the cache layout
below is what `huggingface-cli download --repo-type dataset` leaves (blobs, a snapshot of links, a ref),
and huggingface_hub itself resolves it; the ingest runs as a real process with the Hub offline."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.storage.file_errors import InputError
from thresher.storage.hf_datasets import split_hf_dataset

THRESHER = [sys.executable, "-c", "from thresher.cli import main; main()"]
COMMIT = "c0ffee" + "0" * 34


def cache_dataset(hub_cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """A dataset repository in huggingface_hub's cache layout; returns the snapshot folder."""
    repo = hub_cache / f"datasets--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    for name, content in files.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def parquet_bytes(tmp_path: Path, texts: list[str]) -> bytes:
    path = tmp_path / "scratch.parquet"
    pq.write_table(pa.table({"text": texts, "url": [f"https://example.com/{i}" for i in range(len(texts))]}), path)
    return path.read_bytes()


def thresher(*args: str, hub_cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([*THRESHER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("url", "expected"), [
    ("hf://datasets/allenai/c4", ("allenai/c4", None, "")),
    ("hf://datasets/allenai/c4@v1.0/en/*.json.gz", ("allenai/c4", "v1.0", "en/*.json.gz")),
    ("hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/", ("HuggingFaceFW/fineweb-edu", None, "sample/10BT")),
])
def test_dataset_urls_split_into_repo_revision_and_path(url, expected):
    assert split_hf_dataset(url) == expected


@pytest.mark.parametrize("url", ["hf://datasets/only-owner", "hf://datasets/owner/../etc", "hf://datasets/o/n/../../x"])
def test_malformed_dataset_urls_are_input_errors(url):
    with pytest.raises(InputError):
        split_hf_dataset(url)


def test_ingest_reads_a_cached_dataset_by_id(tmp_path, sample_data):
    pages = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").read_text().splitlines()[:30]]
    hub_cache = tmp_path / "hub"
    cache_dataset(hub_cache, "thresher-test/pages", {
        "data/train-00000.parquet": parquet_bytes(tmp_path, pages[:20]),
        "data/test-00000.parquet": parquet_bytes(tmp_path, pages[20:]),
        "README.md": b"---\nlicense: odc-by\n---\n# pages\n",
    })

    whole = thresher("ingest", "run-all", "hf://datasets/thresher-test/pages", "--format", "fineweb",
                     hub_cache=hub_cache, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    texts = pq.read_table(tmp_path / "run-all" / "documents").column("text").to_pylist()
    assert sorted(texts) == sorted(pages)  # both splits; the README is passed over



def test_a_path_inside_a_cached_dataset_names_only_those_files(tmp_path, monkeypatch, sample_data):
    from huggingface_hub import constants

    from thresher.config_base import InputSpec
    from thresher.storage.formats import expand_inputs

    hub_cache = tmp_path / "hub"
    snapshot = cache_dataset(hub_cache, "thresher-test/pages", {
        "data/train-00000.parquet": parquet_bytes(tmp_path, ["a page"]),
        "data/test-00000.parquet": parquet_bytes(tmp_path, ["another page"]),
    })
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    files, _ = expand_inputs(InputSpec(paths=["hf://datasets/thresher-test/pages/data/train-*.parquet"]))
    assert files == [str(snapshot / "data" / "train-00000.parquet")]
    with pytest.raises(InputError, match="no file or folder 'data/valid.parquet'"):
        expand_inputs(InputSpec(paths=["hf://datasets/thresher-test/pages/data/valid.parquet"]))
    with pytest.raises(InputError, match="huggingface-cli download --repo-type dataset thresher-test/absent"):
        expand_inputs(InputSpec(paths=["hf://datasets/thresher-test/absent"]))
