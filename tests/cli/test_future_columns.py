"""`thresher validate` binds recipe SQL against the columns the run will have: a misspelt column is
named (with the nearest real names) before any work, and a correct recipe is never refused: the
prediction covers every column the demo's real run ends up with."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_validate import run_validate
from thresher.cli.future_columns import TABLE_SCHEMAS, future_fields
from thresher.cli.validate import check_recipe
from thresher.config import Recipe
from thresher.storage.catalog import open_catalog


def write_recipe(root: Path, selections: str, extra: str = "") -> Path:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "pages.jsonl").write_text('{"text": "A page about rivers and the sea."}\n')
    recipe = root / "recipe.yaml"
    recipe.write_text(
        "name: columns\n"
        "run_dir: run\n"
        "inputs:\n"
        "  - paths: [data/pages.jsonl]\n"
        "scorers: [{name: heuristics}, {name: langid}]\n"
        "dedup: {}\n"
        + extra
        + "selections:\n"
        + selections
    )
    return recipe


def test_a_misspelt_column_is_named_with_the_nearest_real_ones(tmp_path):
    write_recipe(tmp_path, (
        "  - name: long\n"
        "    where:\n"
        "      - {name: words, sql: 'gopher_word_cont >= 50'}\n"
        "      - {name: english, sql: \"lang = 'en'\"}\n"
        "    order_by: lang_scor DESC\n"
        "    limit: 10\n"
    ))
    result = run_validate("recipe.yaml", cwd=tmp_path)  # a real process, as a user runs it
    assert result.returncode == 2, result.stderr
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert len(problems) == 2, problems
    by_field = dict(p.split(": ", 1) for p in problems)
    assert by_field["selections.0.where.0.sql"].startswith("no column gopher_word_cont in documents_scored")
    assert "did you mean gopher_word_count" in by_field["selections.0.where.0.sql"]
    assert "did you mean lang_score" in by_field["selections.0.order_by"]


def test_columns_of_scorers_judges_dedup_and_the_table_all_bind(tmp_path):
    recipe = write_recipe(tmp_path, (
        "  - name: good\n"
        "    table: instructions\n"
        "    where:\n"
        "      - {name: judged, sql: 'judge_alpagasus_score >= 4 AND NOT minhash_is_duplicate'}\n"
        "      - {name: exact, sql: 'NOT exact_is_duplicate AND length(output) > 10'}\n"
        "      - {name: sub, sql: 'doc_id IN (SELECT doc_id FROM selections_not_yet_made)'}\n"
        "    order_by: judge_alpagasus_score DESC\n"
        "    limit: 5\n"
    ), extra="judges: [{name: judge_alpagasus, params: {sample_fraction: 0.5}}]\n")
    problems, _ = check_recipe(recipe, [])
    assert problems == []


def test_a_column_an_earlier_command_wrote_into_the_run_is_known(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    recipe = write_recipe(tmp_path, (
        "  - name: calibrated\n"
        "    where:\n"
        "      - {name: p, sql: 'judge_edu_calibrated >= 0.5'}\n"
    ))
    assert any("judge_edu_calibrated" in p for p in check_recipe(recipe, [])[0])
    sidecar = tmp_path / "run" / "scores" / "judge_edu_calibrated@1" / "part-000.parquet"
    sidecar.parent.mkdir(parents=True)
    pq.write_table(pa.table({"doc_id": ["a"], "judge_edu_calibrated": [0.7]}), sidecar)
    assert check_recipe(recipe, [])[0] == []


def test_the_prediction_covers_every_column_of_the_demo_run(demo_run):
    import yaml

    recipe = Recipe.model_validate(yaml.safe_load((demo_run.root / "recipe.yaml").read_text(encoding="utf-8")))
    predicted = {f.name for f in future_fields(dict(recipe), None)}
    with open_catalog(demo_run) as con:
        for table, schema in TABLE_SCHEMAS.items():
            actual = {row[0] for row in con.execute(f"DESCRIBE {table}_scored").fetchall()}
            missing = actual - predicted - set(schema.names)
            assert not missing, f"{table}_scored has columns validate does not predict: {sorted(missing)}"
