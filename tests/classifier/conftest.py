"""Fixtures of the classifier tests: one real documents run (200 C4 pages + 2,461 WikiText-2
paragraphs, one a line), scored with thresher's heuristics, built once per session without Prefect.

No live judge here (a 0.5B judge costs ~1 s a row on 2 cores): the judge-mode target is a real
signal thresher computed on the same text, the Gopher stop-word share of the words. The classifier
reads it exactly as it reads `judge_edu_score`."""

from __future__ import annotations

import pytest

from thresher.config_base import IngestConfig, InputSpec
from thresher.scorers.apply import score_shard
from thresher.scorers.heuristics import HeuristicsScorer
from thresher.storage.catalog import build_catalog
from thresher.storage.formats import discover_shards
from thresher.storage.ingest import ingest_shard
from thresher.storage.run_dir import RunDir

STOP_WORD_SHARE = "gopher_stop_word_count::DOUBLE / greatest(gopher_word_count, 1)"


def run_inputs(sample_data) -> list[InputSpec]:
    return [InputSpec(paths=[str(sample_data / "c4_sample.jsonl")]),
            InputSpec(paths=[str(sample_data / "wikitext2_valid.txt")], text_mode="lines")]


def make_run(root, sample_data, seed: int = 3) -> RunDir:
    run = RunDir(root)
    run.init(seed=seed)
    for spec in run_inputs(sample_data):
        for shard in discover_shards(spec):
            ingest_shard(run, shard, spec, IngestConfig())
    for table, shard_id, _ in run.data_parts():
        score_shard(run, HeuristicsScorer(), table, shard_id)
    build_catalog(run)
    return run


@pytest.fixture(scope="session")
def classifier_run(sample_data, tmp_path_factory) -> RunDir:
    """Tests may add classifiers to it but not change its inputs (copy it to write elsewhere)."""
    return make_run(tmp_path_factory.mktemp("classifier-run") / "run", sample_data)


@pytest.fixture(scope="session")
def alpaca_reference(sample_data) -> InputSpec:
    return InputSpec(paths=[str(sample_data / "alpaca_5000.json")])
