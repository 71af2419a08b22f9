"""Fixtures of the DSIR tests: real-text mixtures ingested into runs (without Prefect)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.dsir.mixture import build_pool, build_targets, ingest_files
from thresher.config import InputSpec
from thresher.dsir.config import DsirConfig, DsirTarget
from thresher.dsir.fit import fit_dsir, save_fit
from thresher.dsir.weights import DsirScorer
from thresher.scorers.apply import score_shard
from thresher.storage.catalog import build_catalog


@pytest.fixture(scope="session")
def udhr_texts(sample_data) -> list[str]:
    """The Universal Declaration of Human Rights in ~380 languages and many scripts."""
    texts = []
    with zipfile.ZipFile(sample_data / "udhr2.zip") as archive:
        for name in archive.namelist():
            try:
                texts.append(archive.read(name).decode("utf-8"))
            except UnicodeDecodeError:
                continue
    return [t for t in texts if t.strip()]


@pytest.fixture(scope="session")
def dsir_targets(sample_data, tmp_path_factory) -> dict[str, Path]:
    return build_targets(sample_data, tmp_path_factory.mktemp("dsir-targets"))


@pytest.fixture(scope="session")
def wiki_web_run(sample_data, dsir_targets, tmp_path_factory):
    """A run of 600 C4 documents + 100 Wikipedia chunks, fitted toward other Wikipedia articles,
    weighted and catalogued. Returns (run, fitted, pool files)."""
    directory = tmp_path_factory.mktemp("wiki-web")
    pool = build_pool(sample_data, directory / "pool", wiki_docs=100, c4_copies=3)
    run = ingest_files(directory / "run", list(pool.values()), seed=7)
    config = DsirConfig(targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(dsir_targets["wiki"])])])])
    fitted = fit_dsir(run, config)
    save_fit(run, fitted)
    scorer = DsirScorer.from_fit(fitted)
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    build_catalog(run)
    return run, fitted, pool
