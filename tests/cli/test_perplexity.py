"""The perplexity stage's CLI commands (thresher/cli/perplexity.py) on the real `thresher` app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from thresher.cli import app

runner = CliRunner()


@pytest.mark.usefixtures("prefect_for_cli")
def test_train_then_score_a_run(sample_data, tmp_path):
    from thresher.config import IngestConfig, InputSpec
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.readers import discover_shards
    from thresher.storage.run_dir import RunDir

    reference = tmp_path / "reference.txt"
    reference.write_text((sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8"), encoding="utf-8")
    trained = runner.invoke(app, ["train-kenlm", str(reference), "--out", str(tmp_path / "lm"), "--order", "3"],
                            terminal_width=200)
    assert trained.exit_code == 0, trained.output
    assert "model:" in trained.output and "KenLM model" in trained.output
    model = tmp_path / "lm" / json.loads((tmp_path / "lm" / "kenlm_train.json").read_text())["model"]

    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(sample_data / "c4_sample.jsonl")], format="c4")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    scored = runner.invoke(app, ["perplexity", str(run.root), "--kenlm-model", str(model)], terminal_width=200)
    assert scored.exit_code == 0, scored.output
    assert "kenlm@1" in scored.output and "p30" in scored.output
    assert any((run.root / "scores" / "kenlm@1").glob("part-*.parquet"))


@pytest.mark.usefixtures("prefect_for_cli")
def test_train_a_proxy_then_score_a_run_with_it(sample_data, tmp_path):
    from thresher.config import IngestConfig, InputSpec
    from thresher.storage.catalog import open_catalog
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.readers import discover_shards
    from thresher.storage.run_dir import RunDir

    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(["The cat sat on the mat and looked at the door."] * 40), encoding="utf-8")
    result = runner.invoke(app, ["train-proxy", str(reference), "--out", str(tmp_path / "proxy"), "--steps", "3",
                                 "--vocab-size", "300", "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
                                 "--block-size", "16", "--batch-size", "2", "--threads", "1", "--seed", "3"],
                            terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proxy" / "config.json").is_file() and "proxy LM" in result.output

    documents = tmp_path / "docs.jsonl"
    documents.write_text("\n".join((sample_data / "c4_sample.jsonl").read_text().splitlines()[:12]) + "\n")
    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(documents)], format="c4")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    scored = runner.invoke(app, ["perplexity", str(run.root), "--lm-model", str(tmp_path / "proxy"),
                                 "--max-tokens", "16"], terminal_width=200)
    assert scored.exit_code == 0, scored.output
    assert "lm_perplexity@1" in scored.output
    with open_catalog(run) as con:
        rows = con.execute("SELECT count(*), count(lm_perplexity), max(lm_tokens) FROM documents_scored").fetchall()
    assert rows == [(12, 12, 16)]


def test_errors_are_messages_not_tracebacks(tmp_path):
    result = runner.invoke(app, ["perplexity", str(tmp_path)])
    assert result.exit_code == 2 and "--kenlm-model and/or --lm-model" in result.output
    result = runner.invoke(app, ["train-kenlm", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["train-kenlm", str(tmp_path), "--out", str(tmp_path / "o"), "--order", "9"])
    assert result.exit_code == 2
