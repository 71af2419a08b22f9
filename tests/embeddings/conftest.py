"""Fixtures of the embedding tests: one real instruction run, embedded once per session.

Embeddings are cut at 128 tokens here (the model's default is 256) to keep the suite's embedding
cost at ~800 short texts; every test reads the same sidecar."""

from __future__ import annotations

import pytest

from tests.embeddings.corpus import ingest, truth, write_corpus
from thresher.embeddings.config import EmbedConfig
from thresher.scorers.apply import score_shard
from thresher.scorers.heuristics import HeuristicsScorer
from thresher.storage.catalog import build_catalog

TEST_EMBED = EmbedConfig(max_seq_length=128, backend="onnx")


@pytest.fixture(scope="session")
def embed_config() -> EmbedConfig:
    return TEST_EMBED


@pytest.fixture(scope="session")
def instruction_files(sample_data, tmp_path_factory):
    return write_corpus(sample_data, tmp_path_factory.mktemp("embed-corpus"))


@pytest.fixture(scope="session")
def embedded_run(instruction_files, tmp_path_factory):
    """The planted-paraphrase corpus ingested, scored with thresher's heuristics and embedded
    (without Prefect). Tests may add tables to it (semdedup, selections) but not change its inputs."""
    run = ingest(tmp_path_factory.mktemp("embed-run") / "run", instruction_files, seed=11)
    scorer = TEST_EMBED.scorer()
    for table, shard_id, _ in run.data_parts():
        score_shard(run, HeuristicsScorer(), table, shard_id)
        score_shard(run, scorer, table, shard_id)
    build_catalog(run)
    return run


@pytest.fixture(scope="session")
def planted(embedded_run):
    return truth(embedded_run)
