"""A run to compare selections in: a web-like pool of 200 C4 pages, 100 Wikipedia chunks (articles
15-29 of the sample) and 100 pages of the Universal Declaration of Human Rights in other languages
(what a perplexity filter's tail holds on a real crawl), DSIR-weighted toward Wikipedia articles 0-9,
with articles 10-14 held out as the eval set (so neither the DSIR target nor the pool holds the
evaluated text); two selections of 100 documents: the DSIR top (toward Wikipedia) and the tail of
its weight per token (the pages least like it: the deliberately bad one)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.dsir.mixture import build_pool, ingest_files, wiki_chunks, write_jsonl
from thresher.config import InputSpec, SelectionRecipe
from thresher.dsir.config import DsirConfig, DsirTarget
from thresher.dsir.fit import fit_dsir, save_fit
from thresher.dsir.weights import DsirScorer
from thresher.eval.config import EvalConfig, EvalSetSpec, TinyLMSettings, TrainSettings
from thresher.scorers.apply import score_shard
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir
from thresher.storage.select import run_selection

SELECTED = 100


def small_config(heldout: Path, **changes) -> EvalConfig:
    """The comparison the tests run: about 4 s per model on one core. Measured on this mixture (held-out
    loss, 3 seeds): one layer and 200 steps separate top, random and tail by 0.16 and 0.56 nats with
    standard errors near 0.05; two layers and 150 steps left top and random within their spread."""
    values = dict(name="wiki", selections=["dsir-top", "dsir-tail"],
                  eval_sets=[EvalSetSpec(name="wiki_heldout", paths=[str(heldout)], max_tokens=8192)],
                  seeds=[0, 1, 2], bpe_vocab=512, model=TinyLMSettings(context=64, layers=1),
                  train=TrainSettings(steps=200, batch_size=16, lr=1e-2, warmup=20, checkpoint_every=50,
                                      eval_every=50, threads=1))
    values.update(changes)
    return EvalConfig(**values)


def foreign_pages(sample_data: Path, count: int, chars: int = 1500) -> list[str]:
    """The first `chars` characters of `count` non-English UDHR translations (every third file)."""
    pages = []
    with zipfile.ZipFile(sample_data / "udhr2.zip") as archive:
        for name in archive.namelist()[::3]:
            if "eng" in name or name.endswith("/"):
                continue
            try:
                text = archive.read(name).decode("utf-8").strip()
            except UnicodeDecodeError:
                continue
            if len(text) >= chars:
                pages.append(text[:chars])
            if len(pages) == count:
                break
    return pages


@pytest.fixture(scope="module")
def wiki_web(sample_data, tmp_path_factory) -> tuple[RunDir, Path]:
    """(the run, the held-out Wikipedia file). Tests that write into the run copy it first."""
    directory = tmp_path_factory.mktemp("eval-wiki-web")
    pool = build_pool(sample_data, directory / "pool", wiki_docs=100, c4_copies=1)
    pool["foreign"] = write_jsonl(directory / "pool" / "foreign.jsonl", foreign_pages(sample_data, 100))
    run = ingest_files(directory / "run", list(pool.values()), seed=3)
    target = write_jsonl(directory / "target.jsonl", wiki_chunks(sample_data, range(0, 10)))
    heldout = write_jsonl(directory / "heldout.jsonl", wiki_chunks(sample_data, range(10, 15)))
    fitted = fit_dsir(run, DsirConfig(targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(target)])])]))
    save_fit(run, fitted)
    scorer = DsirScorer.from_fit(fitted)
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    build_catalog(run)
    # The tail ranks by weight per token, so that it holds the pages least like the target whatever their length.
    for name, order in (("dsir-top", "dsir_wiki_log_weight DESC"),
                        ("dsir-tail", "dsir_wiki_log_weight / greatest(dsir_num_tokens, 1) ASC")):
        run_selection(run, SelectionRecipe(name=name, limit=SELECTED, order_by=order))
    build_catalog(run)
    return run, heldout
