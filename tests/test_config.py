import pytest

from thresher.config import ConfigError, Recipe, load_recipe


def test_recipe_loads_and_anchors_relative_paths(tmp_path):
    (tmp_path / "recipe.yaml").write_text(
        "name: web\nrun_dir: runs/web\nseed: 7\ninputs:\n  - paths: data/*.jsonl\n    format: c4\n"
    )
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.seed == 7
    assert recipe.run_dir == str(tmp_path / "runs/web")
    assert recipe.inputs[0].paths == [str(tmp_path / "data/*.jsonl")]
    assert [s.name for s in recipe.scorers] == ["heuristics", "langid"]


def test_unknown_key_error_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("name: web\nrun_dir: r\ninputs:\n  - paths: [a.jsonl]\n    fromat: c4\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    message = str(info.value)
    assert str(path) in message
    assert "inputs.0.fromat" in message


def test_bad_value_and_bad_yaml_are_config_errors(tmp_path):
    bad_value = tmp_path / "bad.yaml"
    bad_value.write_text("name: web\nrun_dir: r\ninputs:\n  - paths: [a]\n    format: xlsx\n")
    with pytest.raises(ConfigError, match="inputs.0.format"):
        load_recipe(bad_value)
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(not_yaml)
    with pytest.raises(ConfigError, match="no such file"):
        load_recipe(tmp_path / "missing.yaml")


def test_recipe_hash_changes_with_content():
    base = dict(name="a", run_dir="r", inputs=[{"paths": ["x"]}])
    assert Recipe(**base).content_hash() == Recipe(**base).content_hash()
    assert Recipe(**base).content_hash() != Recipe(**base, seed=1).content_hash()


def test_judges_belong_under_judges_not_scorers(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nrun_dir: run\ninputs: [{paths: [x.jsonl]}]\nscorers: [{name: judge_alpagasus}]\n")
    with pytest.raises(ConfigError, match="list it under `judges:`"):
        load_recipe(recipe)
    recipe.write_text("name: r\nrun_dir: run\ninputs: [{paths: [x.jsonl]}]\n"
                      "judges: [{name: judge_alpagasus, params: {sample_fraction: 0.1}}]\n")
    assert load_recipe(recipe).judges[0].params == {"sample_fraction": 0.1}


def test_scorer_names_and_params_are_checked_when_the_recipe_loads(tmp_path):
    """Before any work starts: the error names the file and the key, for `scorers:` and `judges:`."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: r\nrun_dir: run\ninputs: [{paths: [x.jsonl]}]\n"
                      "scorers:\n  - {name: heuristics}\n  - {name: langid}\n"
                      "  - {name: kenlm, params: {modle: lm.arpa, model: lm.arpa}}\n  - {name: kenml}\n"
                      "judges:\n  - {name: judge_edu, params: {sample_fraction: lots}}\n  - {name: heuristics}\n"
                      "  - {name: judge_edu_gen, params: {mode: expected}}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{recipe}: 5 problem(s) in the recipe"
    assert lines[1].startswith("  scorers.2.params.modle: unknown parameter for kenlm")
    assert lines[2].startswith("  scorers.3.name: unknown scorer 'kenml'; available: ")
    assert lines[3].startswith("  judges.0.params.sample_fraction: Input should be a valid number")
    assert lines[4] == "  judges.1.name: heuristics is not a judge: list it under `scorers:`"
    assert lines[5] == "  judges.2.params.mode: judge_edu_gen sets mode='generate'"
    # A model file that does not exist yet is the build's business, not the recipe's.
    recipe.write_text("name: r\nrun_dir: run\ninputs: [{paths: [x.jsonl]}]\n"
                      "scorers: [{name: kenlm@1, params: {model: not-trained-yet.arpa}}, {name: distilled, "
                      "params: {head: runs/r/models/distilled_edu}}]\n")
    assert [s.name for s in load_recipe(recipe).scorers] == ["kenlm@1", "distilled"]
