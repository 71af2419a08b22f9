"""Fixtures of the flow tests: a small real C4 corpus and its curation on the default (threads)
task runner, made once and read by the curate, rerun and task-runner tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpora import write_c4_shards
from tests.flows.runs import recipe_for


@pytest.fixture(scope="package")
def c4_inputs(sample_data, tmp_path_factory) -> Path:
    """Four shards of the C4 sample, and a real shard cut short in transit (the reader keeps what
    precedes the cut)."""
    directory = tmp_path_factory.mktemp("c4")
    write_c4_shards(sample_data, directory, shards=4)
    whole = (directory / "c4-003.json.gz").read_bytes()
    (directory / "c4-cut.json.gz").write_bytes(whole[: len(whole) // 2])
    return directory


@pytest.fixture(scope="package")
def web_curation(prefect_harness, c4_inputs, tmp_path_factory):
    """(recipe, result) of curating `c4_inputs` once on the threads runner. A test that changes the
    run must leave it with the same outputs (the rerun test deletes a shard and has it redone)."""
    from thresher.flows.curate import curate_flow

    recipe = recipe_for(tmp_path_factory.mktemp("web-curation"), c4_inputs)
    return recipe, curate_flow(recipe)
