"""`thresher scorers`, run for real: every registration appears with its columns and parameters."""

from __future__ import annotations

from typer.testing import CliRunner

from thresher.cli import app
from thresher.scorers.registry import registrations, scorer_class


def _blocks(output: str) -> dict[str, list[str]]:
    """The listing's blocks (header line first) by their first word (`name@version`)."""
    blocks: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line and not line.startswith(" "):
            blocks[line.split()[0]] = [line]
        elif line.strip():
            blocks[list(blocks)[-1]].append(line.strip())
    return blocks


def test_scorers_lists_every_registered_scorer_with_its_columns():
    result = CliRunner().invoke(app, ["scorers"], terminal_width=100)
    assert result.exit_code == 0, result.output
    blocks = _blocks(result.output)
    assert set(blocks) == {r.key for r in registrations()}
    for reg in registrations():
        lines = blocks[reg.key]
        (columns,) = [line.removeprefix("columns: ").split(", ") for line in lines if line.startswith("columns: ")]
        cls = scorer_class(reg.key)
        stem = "<name>" if reg.name in ("distilled", "classifier") else reg.name  # their model names the columns
        assert columns == ["doc_id", *(c.format(name=stem) for c in cls.output_columns)], reg.key
    # Parameters without a default are named, and so are parameters that rename the columns.
    assert "required params: head" in blocks["distilled@1"] and "required params: model" in blocks["kenlm@1"]
    assert "required params: none" in blocks["heuristics@1"]
    assert any(line.startswith("columns depend on head:") for line in blocks["distilled@1"])
    assert any(line.startswith("columns depend on tag:") for line in blocks["embed@1"])
    assert "judge_edu_gen_score" in ", ".join(blocks["judge_edu_gen@1"])
    assert blocks["judge_edu@1"][0] == "judge_edu@1  (judge stage; reads documents)"
    assert blocks["langid@1"][0] == "langid@1  (score stage; reads every table)"
