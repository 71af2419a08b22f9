"""docs/walkthrough.md, followed as a user would: its ```bash walkthrough blocks run in order, one
command line at a time, in a real shell where `thresher` is `python -m thresher.cli`, and its
```yaml walkthrough-file=NAME blocks are the files it writes. Every command must exit 0, and what
it prints for machines (`-o csv`) is read back with `csv` and checked against the run's own files."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "docs" / "walkthrough.md"
FENCE = re.compile(r"^```(\S+)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.usefixtures("prefect_for_cli")


def walkthrough_steps(markdown: str) -> list[tuple[str, str, str]]:
    """("file", name, content) and ("run", command, "") in the order the document gives them."""
    steps = []
    for lang, info, body in FENCE.findall(markdown):
        written = re.search(r"walkthrough-file=(\S+)", info)
        if written:
            steps.append(("file", written.group(1), body))
        elif lang == "bash" and info.split() == ["walkthrough"]:
            steps += [("run", line.strip(), "") for line in body.splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
    return steps


def shell_env(tmp_path: Path) -> dict:
    from prefect.settings import PREFECT_API_URL

    # `thresher` on PATH is this interpreter's module, as an installed console script would be.
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    script = bin_dir / "thresher"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m thresher.cli "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "THRESHER_SRC": str(REPO),
            # The children use this session's Prefect API instead of starting one each (~25 s).
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            # A narrow terminal: machine output must not be wrapped whatever the width.
            "COLUMNS": "60"}


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_walkthrough_steps_are_found():
    steps = walkthrough_steps(WALKTHROUGH.read_text(encoding="utf-8"))
    files = [name for kind, name, _ in steps if kind == "file"]
    commands = [command for kind, command, _ in steps if kind == "run"]
    assert files == ["recipe.yaml", "long_instructions.yaml"]
    for needed in ("thresher validate", "thresher curate", "thresher sql", "thresher select", "thresher export"):
        assert any(c.startswith(needed) for c in commands), f"the walkthrough runs no `{needed}`"
    # Checked before run.
    assert commands.index("thresher validate recipe.yaml") < commands.index("thresher curate recipe.yaml")


def test_the_walkthrough_runs_end_to_end(tmp_path):
    env = shell_env(tmp_path)
    outputs: list[tuple[str, str]] = []
    for kind, what, content in walkthrough_steps(WALKTHROUGH.read_text(encoding="utf-8")):
        if kind == "file":
            (tmp_path / what).write_text(content, encoding="utf-8")
            continue
        done = subprocess.run(["bash", "-c", what], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"`{what}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        outputs.append((what, done.stdout))

    def output_of(fragment: str) -> str:
        (found,) = [out for command, out in outputs if fragment in command]
        return found

    run = tmp_path / "runs" / "my_curation"
    assert output_of("thresher validate").startswith("recipe ok: ")

    # The schema the recipe's first line points editors at accepts the recipe and refuses a typo.
    import jsonschema

    schema = json.loads((tmp_path / "recipe.schema.json").read_text())
    recipe = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    jsonschema.validate(recipe, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**recipe, "scorer": [{"name": "heuristics"}]}, schema)

    documents = pq.read_table(run / "documents").num_rows
    instructions = pq.read_table(run / "instructions").num_rows
    assert (documents, instructions) == (200, 999)  # the samples' rows, none quarantined

    languages = csv_rows(output_of("GROUP BY lang"))
    assert list(languages[0]) == ["lang", "docs"]
    assert sum(int(row["docs"]) for row in languages) == documents
    assert languages[0]["lang"] == "en"

    selected = pq.read_table(run / "selections" / "clean_web" / "selected.parquet")
    assert 0 < selected.num_rows <= 100
    ranked = csv_rows(output_of("selections_clean_web"))
    assert [int(r["rank"]) for r in ranked] == list(range(1, min(10, selected.num_rows) + 1))
    stop_words = [int(r["gopher_stop_word_count"]) for r in ranked]
    assert stop_words == sorted(stop_words, reverse=True), "order_by DESC must rank the most stop words first"
    assert all(50 <= int(r["gopher_word_count"]) <= 100000 for r in ranked)

    (dedup,) = csv_rows(output_of("FROM instructions_scored\""))
    assert int(dedup["instructions"]) == instructions
    assert 0 <= int(dedup["exact_duplicates"]) <= int(dedup["near_duplicates"]) < instructions

    long_ones = csv_rows(output_of("selections_long_instructions"))
    assert [int(r["rank"]) for r in long_ones] == [1, 2, 3, 4, 5]
    lengths = [int(r["output_chars"]) for r in long_ones]
    assert lengths == sorted(lengths, reverse=True)
    assert pq.read_table(run / "selections" / "long_instructions" / "selected.parquet").num_rows == 50

    for name, rows in (("clean_web", selected.num_rows), ("long_instructions", 50)):
        export = tmp_path / "export" / name
        exported = pq.read_table([str(p) for p in sorted((export / "data").glob("*.parquet"))])
        assert exported.num_rows == rows
        assert exported.column("rank").to_pylist() == list(range(1, rows + 1)), "export keeps the rank order"
        assert (export / "README.md").is_file()
