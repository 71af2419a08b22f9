"""`thresher ingest DIR` in a real process lists the files it did not read, and the run keeps them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from thresher.storage.run_dir import RunDir


def _input_dir(root):
    root.mkdir()
    (root / "a.jsonl").write_text('{"text": "the first jsonl document"}\n{"text": "the second one"}\n')
    (root / "b.txt").write_text("a plain text document\nanother plain text document\n")
    (root / "c.csv").write_text("text,url\na document from csv,http://example.com/c\n")
    (root / "d.docx").write_bytes(b"PK\x03\x04 a word file thresher does not read")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "README.md").write_text("# what these files are\n")
    (root / "copy").mkdir()
    (root / "copy" / "a_again.jsonl").write_bytes((root / "a.jsonl").read_bytes())
    return root


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_of_a_directory_prints_and_records_skipped_files(tmp_path):
    from prefect.settings import PREFECT_API_URL

    inputs = _input_dir(tmp_path / "inputs")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "thresher.cli", "ingest", str(run_dir), str(inputs)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "skipped files (4)" in text
    table = text[text.index("skipped files (4)"):]
    for name, reason in [(".DS_Store", "hidden file"), ("README.md", "unknown extension"),
                         ("d.docx", "unknown extension"), ("a_again.jsonl", "same content as another input")]:
        line = next(line for line in table.splitlines() if name in line)
        assert reason in line, line

    expected = {str(inputs / ".DS_Store"): "hidden file", str(inputs / "README.md"): "unknown extension",
                str(inputs / "d.docx"): "unknown extension", str(inputs / "copy" / "a_again.jsonl"): "same content"}
    recorded = json.loads((run_dir / "skipped_inputs.json").read_text())
    assert [e["path"] for e in recorded] == sorted(expected)
    for entry in recorded:
        assert entry["reason"].startswith(expected[entry["path"]]), entry
    assert next(e for e in recorded if e["path"].endswith("a_again.jsonl"))["same_as"] == str(inputs / "a.jsonl")

    ingest = RunDir(run_dir).read_manifest()["stages"]["ingest"]
    assert ingest["status"] == "finished" and ingest["files_skipped"] == 4
    assert sum(ingest["skipped_reasons"].values()) == 4
    # .txt (one document per file by default) and .csv are read now: 2 + 1 + 1 documents.
    assert (ingest["shards"], ingest["rows_in"], ingest["rows_written"], ingest["rows_quarantined"]) == (3, 4, 4, 0)
