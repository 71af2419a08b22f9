"""`thresher eval run|show` and the recipe's `evaluation:` section."""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from thresher.cli import app
from thresher.config import Recipe

pytestmark = pytest.mark.usefixtures("prefect_for_cli")
runner = CliRunner()


def test_eval_run_and_show(wiki_web, tmp_path):
    source, heldout = wiki_web
    run_dir = shutil.copytree(source.root, tmp_path / "run")
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"evaluation": [{
        "name": "quick", "selections": ["dsir-top", "dsir-tail"], "seeds": [0, 1],
        "eval_sets": [{"name": "heldout", "paths": [str(heldout)], "max_tokens": 2048}],
        "model": {"layers": 1, "hidden": 32, "heads": 2, "context": 32},
        "train": {"steps": 10, "batch_size": 4, "eval_every": 5, "threads": 1}}]}), encoding="utf-8")
    ran = runner.invoke(app, ["eval", "run", str(run_dir), "--config", str(config)])
    assert ran.exit_code == 0, ran.output
    assert "eval quick: 42,822 training tokens per arm, 2 seeds" in ran.output
    assert "eval/runs/quick/curves.html" in ran.output
    shown = runner.invoke(app, ["eval", "show", str(run_dir)])
    assert shown.exit_code == 0, shown.output
    assert "eval quick: 42,822 training tokens per arm, 2 seeds" in shown.output
    from thresher.eval.report import stored_reports

    (report,) = stored_reports(run_dir)
    assert sorted(r["selection"] for r in report["summary"]) == ["dsir-tail", "dsir-top"]
    nothing = runner.invoke(app, ["eval", "show", str(run_dir), "--name", "other"])
    assert nothing.exit_code != 0 and "no eval 'other'" in nothing.output
    missing = runner.invoke(app, ["eval", "run", str(run_dir), "-s", "dsir-top"])
    assert missing.exit_code != 0 and "give --eval-set FILE or --eval-sql QUERY" in missing.output
    leaked = runner.invoke(app, ["eval", "run", str(run_dir), "-s", "dsir-top", "--steps", "2", "--seeds", "1",
                                 "--eval-sql", "SELECT text FROM documents WHERE source LIKE '%wiki%'"])
    assert leaked.exit_code != 0 and "evaluation sets overlap training data" in leaked.output


def test_a_recipe_evaluates_only_selections_it_makes(tmp_path):
    base = {"name": "r", "run_dir": str(tmp_path / "run"), "inputs": [{"paths": ["x.jsonl"]}],
            "selections": [{"name": "good", "where": [{"name": "all", "sql": "TRUE"}]}]}
    evaluation = {"name": "cmp", "selections": ["good"], "eval_sets": [{"name": "e", "paths": ["held.jsonl"]}]}
    recipe = Recipe.model_validate({**base, "evaluation": [evaluation]})
    assert recipe.evaluation[0].arms == ["good", "random"]
    with pytest.raises(ValueError, match="evaluation 'cmp': no selection named typo in this recipe"):
        Recipe.model_validate({**base, "evaluation": [{**evaluation, "selections": ["typo"]}]})


def test_recipe_paths_of_eval_sets_are_taken_from_the_recipe_and_validated(tmp_path):
    from thresher.cli.validate import check_recipe
    from thresher.config import load_recipe

    (tmp_path / "data.jsonl").write_text('{"text": "a document"}\n', encoding="utf-8")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({
        "name": "r", "run_dir": "run", "inputs": [{"paths": ["data.jsonl"]}],
        "selections": [{"name": "good", "where": [{"name": "all", "sql": "TRUE"}]}],
        "evaluation": [{"name": "cmp", "selections": ["good"], "random_where": "no_such_column > 1",
                        "eval_sets": [{"name": "e", "paths": ["held/out.jsonl"]}]}]}), encoding="utf-8")
    recipe = load_recipe(path)
    assert recipe.evaluation[0].eval_sets[0].paths == [str(tmp_path / "held" / "out.jsonl")]
    problems, _ = check_recipe(path, [])
    assert any(p.startswith("evaluation.0.eval_sets.0.paths.0:") and "no such file" in p for p in problems), problems
    assert any(p.startswith("evaluation.0.random_where:") and "no_such_column" in p for p in problems), problems
