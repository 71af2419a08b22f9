"""The recipe reference and schema: generated from the models, committed as docs/recipe.md (kept
fresh by a test), and printed by `thresher recipe reference|schema` in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from thresher.config import Recipe
from thresher.recipe_reference import REGENERATE, model_places, reference_markdown, render_type, undocumented_fields

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "recipe.md"
THRESHER = [sys.executable, "-m", "thresher.cli"]


def thresher(*args: str, columns: int = 40) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([*THRESHER, *args], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def test_docs_recipe_md_is_the_generated_reference():
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        f"docs/recipe.md is stale (a recipe model, a field description or a scorer changed): "
        f"regenerate it with `{REGENERATE}` and commit it")


def test_every_recipe_key_has_a_description():
    assert undocumented_fields(Recipe) == [], "add description= to these Field()s"


def test_every_key_of_every_model_is_in_its_section():
    reference = reference_markdown()
    for model, paths in model_places(Recipe).items():
        start = reference.index(f"\n## {model.__name__}\n")
        end = reference.find("\n## ", start + 1)
        section = reference[start:end]
        for path in paths:
            if path != "(top level)":
                assert f"`{path}`" in section
        for name in model.model_fields:
            assert f"\n| `{name}` | " in section, f"{model.__name__}.{name} missing from its section"


@pytest.mark.parametrize("row", [
    # type, constraints, default and description of keys at several depths
    "| `name` | str; matches `^[A-Za-z0-9_.-]+$` | **required** | the run's name, recorded in run.json |",
    "| `threshold` | float; > 0.0, < 1.0 | `0.7` |",
    "| `kind` | one of `\"threads\"`, `\"processes\"`, `\"dask\"` | `\"threads\"` |",
    "| `inputs` | list of [InputSpec](#inputspec); at least 1 item(s) | **required** |",
    "| `dedup` | [DedupConfig](#dedupconfig) or null | `null` |",
    "| `num_tokens_to_fit` | int or one of `\"auto\"`, `\"all\"` | `\"auto\"` |",
    "| `judge` | [LMSpec](#lmspec) | [LMSpec](#lmspec) with `{\"model\": \"qwen2.5-coder-0.5b-instruct\"}` |",
    "| `evolve` | [GenerationSettings](#generationsettings) | [GenerationSettings](#generationsettings) "
    "with `{\"max_new_tokens\": 160}` |",
    "| `max_chars` | int | `10000` |",  # a scorer's parameter (langid)
])
def test_rows_render_types_defaults_and_constraints(row):
    assert row in reference_markdown()


def test_shared_models_name_every_place_they_are_used():
    places = {model.__name__: paths for model, paths in model_places(Recipe).items()}
    assert places["InputSpec"] == ["inputs[]", "dsir.targets[].inputs[]", "classifiers[].reference[]"]
    assert places["LMSpec"] == ["augment.generator", "augment.responder", "augment.judge"]
    assert places["ScorerSpec"] == ["scorers[]", "judges[]"]
    assert render_type(dict[str, list[int] | None]) == "map of str to list of int or null"


def test_judges_are_listed_under_judges_and_scorers_under_scorers():
    reference = reference_markdown()
    scorers = reference.index("### Under `scorers:`")
    judges = reference.index("### Under `judges:`")
    assert scorers < reference.index("#### `langid`") < judges < reference.index("#### `judge_alpagasus`")


def test_the_reference_command_prints_the_committed_file_unwrapped():
    out = thresher("recipe", "reference")
    assert out.returncode == 0, out.stderr
    assert out.stdout == DOC.read_text(encoding="utf-8")


def test_the_schema_command_prints_a_json_schema_that_checks_recipes(tmp_path):
    out = thresher("recipe", "schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(Recipe.model_fields)
    assert set(schema["required"]) == {"name", "run_dir", "inputs"}

    good = {"name": "web", "run_dir": "runs/web", "inputs": [{"paths": "data/a.jsonl"}],
            "dedup": {"threshold": 0.8}, "selections": [{"name": "top", "order_by": "doc_id", "limit": 5}]}
    Recipe.model_validate(good)
    jsonschema.validate(good, schema)
    for bad in ({**good, "scorer": []},  # a typo of `scorers`
                {**good, "dedup": {"threshold": 1.5}},
                {**good, "task_runner": {"kind": "ray"}},
                {**good, "selections": [{"name": "has space"}]},
                {**good, "inputs": [{"paths": []}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_curate_help_points_to_the_reference_and_validate():
    out = thresher("curate", "--help", columns=400)
    assert out.returncode == 0, out.stderr
    assert "docs/recipe.md" in out.stdout
    assert "thresher validate" in out.stdout
    assert "thresher recipe schema" in out.stdout
    top = thresher("recipe", "--help", columns=200)
    assert "schema" in top.stdout and "reference" in top.stdout
