"""Fit, weights, min-length rule and top-k against the reference `data-selection` 1.0.3, built
as its README shows, on the same JSONL files and buckets."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.dsir.mixture import c4_texts, ingest_files, wiki_chunks, write_jsonl
from thresher.config import InputSpec
from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
from thresher.dsir.fit import fit_dsir, save_fit
from thresher.dsir.resample import read_selection, select_dsir
from thresher.dsir.weights import NUM_TOKENS_COLUMN, DsirScorer, weight_column
from thresher.scorers.apply import score_shard
from thresher.storage.catalog import build_catalog, open_catalog

reference = pytest.importorskip("data_selection")


@pytest.fixture(scope="module")
def files(sample_data, tmp_path_factory):
    directory = tmp_path_factory.mktemp("parity")
    raw_texts = c4_texts(sample_data) + wiki_chunks(sample_data, range(15, 30))[:60]
    return {
        "raw": write_jsonl(directory / "raw.jsonl", raw_texts),
        "target": write_jsonl(directory / "target.jsonl", wiki_chunks(sample_data, range(0, 15))),
        "dir": directory,
        "raw_texts": raw_texts,
    }


def _reference(files, cache: str, **fit_kwargs):
    dsir = reference.HashedNgramDSIR([str(files["raw"])], [str(files["target"])], cache_dir=str(files["dir"] / cache),
                                     num_proc=1)
    dsir.fit_importance_estimator(**fit_kwargs)
    return dsir


def _ours(files, name: str, **config_kwargs):
    run = ingest_files(files["dir"] / name, [files["raw"]])
    config = DsirConfig(targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(files["target"])])])],
                        **config_kwargs)
    return run, fit_dsir(run, config)


def test_fit_weights_lengths_and_top_k_match_the_reference(files):
    theirs = _reference(files, "ref-cache", num_tokens_to_fit="auto")
    theirs.compute_importance_weights()
    run, fitted = _ours(files, "run")

    assert np.array_equal(fitted.raw_probs, theirs.raw_probs)
    assert np.array_equal(fitted.target_probs[0], theirs.target_probs)
    assert np.allclose(fitted.log_ratio[0], theirs.log_diff, rtol=0, atol=1e-12)

    scorer = DsirScorer.from_fit(fitted)
    ((table, shard_id, _),) = run.data_parts()
    score_shard(run, scorer, table, shard_id)
    ours = pq.read_table(run.score_part("dsir@1", shard_id)).to_pydict()
    rows = pq.read_table(run.table_part(table, shard_id), columns=["doc_id", "source_row"]).to_pydict()
    assert ours["doc_id"] == rows["doc_id"] and rows["source_row"] == list(range(len(files["raw_texts"])))
    their_weights = np.load(files["dir"] / "ref-cache" / "log_importance_weights" / "0.npy")
    their_lengths = np.load(files["dir"] / "ref-cache" / "perexample_metadata" / "0.npy")
    our_weights = np.array(ours[weight_column("wiki")])
    assert len(our_weights) == len(their_weights) == 260
    assert np.allclose(our_weights, their_weights, rtol=1e-10, atol=1e-8), np.max(np.abs(our_weights - their_weights))
    assert np.array_equal(np.array(ours[NUM_TOKENS_COLUMN]), their_lengths)
    assert (their_lengths < 100).sum() > 10  # the min-length rule excludes some documents here

    # Deterministic top-k, min-length rule included: the same documents as the reference.
    save_fit(run, fitted)
    build_catalog(run)
    out = files["dir"] / "ref-out"
    theirs.resample(out_dir=str(out), num_to_sample=25, cache_dir=None, top_k=True)
    their_texts = {json.loads(line)["text"] for line in open(out / "0.jsonl", encoding="utf-8")}
    select_dsir(run, fitted, DsirSelection(name="top", k=25, method="top_k", random_baseline=False))
    _, selected = read_selection(run, "top")
    with open_catalog(run) as con:
        our_texts = {text for (text,) in con.execute(
            "SELECT text FROM documents WHERE doc_id IN (SELECT unnest($ids))",
            {"ids": selected.column("doc_id").to_pylist()}).fetchall()}
    assert len(their_texts) == 25 and our_texts == their_texts


def test_token_budget_stops_where_the_reference_does(files):
    budget = 40_000
    theirs = _reference(files, "ref-budget", num_tokens_to_fit=budget)
    _, fitted = _ours(files, "run-budget", num_tokens_to_fit=budget)
    their_counts = np.round(theirs.raw_probs * fitted.raw_counts.sum()).astype(np.int64)
    assert np.array_equal(fitted.raw_counts, their_counts)
    # It stops after the document that takes the count past the budget.
    cumulative = np.cumsum(fitted.featurizer.featurize(files["raw_texts"]).lengths)
    docs = int(np.searchsorted(cumulative, budget, side="right")) + 1
    assert fitted.stats["raw"]["docs"] == docs < 100 and not fitted.stats["raw"]["exhausted"]
    assert fitted.raw_counts.sum() == cumulative[docs - 1] > budget >= cumulative[docs - 2]
