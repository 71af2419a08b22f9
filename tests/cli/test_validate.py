"""`thresher validate`, run as a real process: every problem in one list and exit 2, or a summary and
exit 0, and in both cases nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

THRESHER = [sys.executable, "-c", "from thresher.cli import main; main()"]


def run_validate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "60"}  # a narrow terminal must not wrap the problem lines
    return subprocess.run([*THRESHER, "validate", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def write_inputs(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "pages.csv").write_text("text,url\nA page about rivers.,https://example.com/a\n")
    (root / "data" / "note.txt").write_text("A plain-text note about mountains.\n")


def test_a_recipe_with_three_mistakes_lists_three_problems_and_writes_nothing(tmp_path):
    write_inputs(tmp_path)
    (tmp_path / "recipe.yaml").write_text(
        "name: three-mistakes\n"
        "run_dir: run\n"
        "scorer: [heuristics]\n"  # 1: not a recipe key (scorers)
        "inputs:\n"
        "  - paths: [data, data/missing.jsonl]\n"  # 2: a literal path that does not exist
        "selections:\n"
        "  - name: long\n"
        "    where:\n"
        "      - {name: len, sql: 'length(text) > 10; DROP TABLE documents'}\n"  # 3: two statements
    )
    before = snapshot(tmp_path)
    result = run_validate("recipe.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "error: recipe.yaml: 3 problem(s)"
    assert len(lines) == 4
    problems = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert problems["scorer"] == "Extra inputs are not permitted"
    assert problems["inputs.0.paths.1"] == f"no such file: {tmp_path / 'data' / 'missing.jsonl'}"
    assert problems["selections.0.where.0.sql"].startswith("Parser Error")
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


def test_a_good_recipe_passes_with_a_summary_and_writes_nothing(tmp_path):
    write_inputs(tmp_path)
    (tmp_path / "recipe.yaml").write_text(
        "name: good\n"
        "run_dir: runs/good\n"
        "inputs:\n"
        "  - paths: [data]\n"
        "selections:\n"
        "  - name: long\n"
        "    order_by: length(text) DESC\n"
        "    where:\n"
        "      - {name: len, sql: length(text) > 10}\n"
    )
    before = snapshot(tmp_path)
    result = run_validate("recipe.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("recipe ok: 3 stages (ingest, score, selections), 1 inputs (2 files), "
                                     "models: none")
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_files_models_and_names_are_checked_where_curate_would_meet_them(tmp_path):
    write_inputs(tmp_path)
    (tmp_path / "data" / "broken.arrow").write_bytes(b"not an arrow stream")
    (tmp_path / "recipe.yaml").write_text(
        "name: deep\n"
        "run_dir: run\n"
        "inputs:\n"
        "  - paths: [data/pages.csv]\n"
        "scorers:\n"
        "  - {name: heuristics}\n"
        "  - {name: kenlm, params: {model: models/missing.arpa}}\n"
        "judges:\n"
        "  - {name: judge_alpagasus, params: {model: ./no-such-model/}}\n"
        "selections:\n"
        "  - {name: top, table: instructions, order_by: 'length(text)) DESC'}\n"
        "augment:\n"
        "  select: [nope]\n"
    )
    result = run_validate("recipe.yaml", "--input", str(tmp_path / "data" / "broken.arrow"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    problems = dict(line.strip().split(": ", 1) for line in result.stderr.splitlines()[1:])
    assert set(problems) == {"--input.0.paths.0", "scorers.1.params.model", "judges.0.params.model",
                             "selections.0.order_by", "augment.select.0"}
    assert problems["--input.0.paths.0"].startswith("unreadable_file: ")
    assert problems["scorers.1.params.model"] == "no such file: models/missing.arpa"
    assert "does not exist" in problems["judges.0.params.model"]
    assert "'nope' is not one of the recipe's instruction selections (top)" in problems["augment.select.0"]
    assert not (tmp_path / "run").exists()


def test_validate_is_in_the_help():
    result = subprocess.run([*THRESHER, "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0 and "validate" in result.stdout
