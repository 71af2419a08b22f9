"""The classifier under Prefect: the flow end to end on a copy of the test run (train, score every
shard, percentiles, catalog, run.json, caching), the `thresher classifier` commands, the shipped
recipe, and a whole curate run with a classifier block and a percentile selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.classifier.conftest import STOP_WORD_SHARE, run_inputs
from thresher.classifier.config import ClassifierConfig
from thresher.cli import app
from thresher.config import Recipe, load_recipe
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_for_cli")
runner = CliRunner()
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_classifier_flow_trains_scores_bins_and_caches(classifier_run, tmp_path):
    from thresher.flows.classifier import classifier_flow

    run = RunDir(shutil.copytree(classifier_run.root, tmp_path / "copy"))
    config = ClassifierConfig(name="flow", target=STOP_WORD_SHARE, sample=1000, seed=1)
    (result,) = classifier_flow(str(run.root), [config])["classifiers"]
    assert result["scoring"]["scored_rows"] == 2661 and result["scoring"]["shards_skipped"] == 0
    stage = run.read_manifest()["stages"]["classifier"]
    assert stage["classifiers"]["flow"]["model_hash"] == result["model_hash"]
    with open_catalog(run) as con:
        scored, top = con.sql("SELECT count(classifier_flow_score), count(*) FILTER (WHERE classifier_flow_pct >= 90) "
                              "FROM documents_scored").fetchall()[0]
    assert scored == 2661 and 250 <= top <= 280
    # same seed: same model, so every shard and the percentiles come from the stored results
    (again,) = classifier_flow(str(run.root), [config])["classifiers"]
    assert again["model_hash"] == result["model_hash"]
    assert again["scoring"]["shards_skipped"] == again["scoring"]["shards"]
    assert again["scoring"]["percentiles"]["skipped"] is True


def test_cli_train_and_score(classifier_run, tmp_path, sample_data):
    run_dir = shutil.copytree(classifier_run.root, tmp_path / "cli")
    trained = runner.invoke(app, ["classifier", "train", str(run_dir), "--name", "ref", "--reference",
                                  str(sample_data / "alpaca_5000.json"), "--where", "source = 'c4_sample.jsonl'",
                                  "--sample", "400", "--seed", "1"])
    assert trained.exit_code == 0, trained.output
    assert "classifier ref" in trained.output and "classifier_ref_pct" in trained.output
    other = tmp_path / "other"  # a model trained on one run scores another
    shutil.copytree(classifier_run.root, other)
    scored = runner.invoke(app, ["classifier", "score", str(other), "--model",
                                 str(run_dir / "models" / "classifier_ref")])
    assert scored.exit_code == 0, scored.output
    with open_catalog(RunDir(other)) as con:
        assert con.sql("SELECT count(classifier_ref_pct) FROM documents_scored").fetchall()[0][0] == 2661
    bad = runner.invoke(app, ["classifier", "train", str(run_dir), "--name", "x"])
    assert bad.exit_code != 0 and "target" in bad.output


def test_shipped_recipe_loads_and_validates():
    recipe = load_recipe(RECIPES / "web_classifier.yaml")
    (classifier,) = recipe.classifiers
    assert classifier.source == "judge" and classifier.target == "judge_edu_score"
    assert recipe.judges[0].params["sample_fraction"] < 1
    assert any("classifier_edu_pct" in w.sql for s in recipe.selections for w in s.where)
    (evaluation,) = recipe.evaluation
    assert evaluation.arms == ["top-decile-edu", "random"] and len(evaluation.seeds) == 3


def test_curate_with_a_classifier_selects_by_percentile(sample_data, tmp_path):
    """The recipe's shape end to end on real data; the label is the stop-word share (a judge is too slow here)."""
    from thresher.flows.curate import curate_flow

    recipe = Recipe(
        name="classifier-e2e", run_dir=str(tmp_path / "run"), seed=4, inputs=run_inputs(sample_data),
        scorers=[{"name": "heuristics"}],
        classifiers=[ClassifierConfig(name="stop", target=STOP_WORD_SHARE, sample=1500)],
        selections=[{"name": "top_decile", "table": "documents",
                     "where": [{"name": "top", "sql": "classifier_stop_pct >= 90"}]}])
    result = curate_flow(recipe)
    (classified,) = result["classifiers"]["classifiers"]
    assert classified["seed"] == 4  # null seed: the run's
    with open_catalog(RunDir(result["run_dir"])) as con:
        selected = con.sql("SELECT count(*) FROM selections_top_decile").fetchall()[0][0]
    assert 250 <= selected <= 280  # ~10 % of 2,661
