"""Expanding directories and globs says which files it passed over, and why."""

from __future__ import annotations

import os

import pytest

from thresher.config_base import InputSpec
from thresher.storage import formats
from thresher.storage.readers import discover_shards


@pytest.fixture()
def mixed(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a jsonl document"}\n')
    (tmp_path / "b.txt").write_text("one document\nanother document\n")
    (tmp_path / "c.csv").write_text("text,url\na csv document,http://example.com\n")
    (tmp_path / "d.docx").write_bytes(b"PK\x03\x04 not a known format")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "README.md").write_text("# about these files\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "hidden.jsonl").write_text('{"text": "never read"}\n')
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "notes.pdf").write_bytes(b"%PDF-1.4")
    os.symlink(tmp_path, tmp_path / "nested" / "loop")  # a directory symlink back up: a loop if followed
    return tmp_path


def test_a_directory_lists_what_it_passes_over(mixed):
    paths, skipped = formats.expand_inputs(InputSpec(paths=[str(mixed)]))
    assert [os.path.basename(p) for p in paths] == ["a.jsonl", "b.txt", "c.csv"]
    assert {os.path.relpath(s.path, mixed): s.reason for s in skipped} == {
        ".DS_Store": formats.SKIP_HIDDEN_FILE,
        ".cache": formats.SKIP_HIDDEN_DIRECTORY,
        "README.md": formats.SKIP_UNKNOWN_EXTENSION,
        "d.docx": formats.SKIP_UNKNOWN_EXTENSION,
        "nested/loop": formats.SKIP_DIRECTORY_SYMLINK,
        "nested/notes.pdf": formats.SKIP_UNKNOWN_EXTENSION,
    }
    assert [s.path for s in skipped] == sorted(s.path for s in skipped)
    # The shards are the files expansion kept, unchanged by the listing.
    assert [s.path for s in discover_shards(InputSpec(paths=[str(mixed)]))] == paths


def test_a_glob_lists_the_files_it_matched_but_does_not_read(mixed):
    _paths, skipped = formats.expand_inputs(InputSpec(paths=[f"{mixed}/*.*"]))
    assert {os.path.basename(s.path): s.reason for s in skipped} == {
        "README.md": formats.SKIP_UNKNOWN_EXTENSION, "d.docx": formats.SKIP_UNKNOWN_EXTENSION}


def test_a_literal_path_is_never_skipped_and_a_named_file_is_not_listed(mixed):
    docx = str(mixed / "d.docx")
    paths, skipped = formats.expand_inputs(InputSpec(paths=[str(mixed), docx]))
    assert docx in paths  # read (and quarantined by its reader), as before
    assert docx not in {s.path for s in skipped}
    [shard] = discover_shards(InputSpec(paths=[docx]))
    assert shard.problem is not None  # goes to quarantine, not to the skipped list
