"""Fixtures of the dedup tests: a planted corpus with known near duplicates, as JSONL shards."""

from __future__ import annotations

import pytest

from tests.dedup.planted import build
from tests.dedup.runs import write_shards


@pytest.fixture(scope="package")
def corpus(sample_data):
    planted = build(sample_data)
    keep = [i for i, kind in enumerate(planted.kinds) if kind != "unrelated"][:240]
    keep += [i for i, kind in enumerate(planted.kinds) if kind == "unrelated"][:60]
    texts = [planted.texts[i] for i in keep]
    # exact duplicates of two base documents, re-punctuated and re-cased
    texts += [texts[0].upper() + " !!!", texts[3].replace(".", " . ")]
    return texts


@pytest.fixture(scope="package")
def inputs(corpus, tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("inputs"), corpus, shards=3)
