"""How a failing command reads, in real `thresher` processes: one `error:` line (and at most one
`hint:` line) on stderr, exit status 2, no traceback unless `--debug` or THRESHER_DEBUG=1 asks for
it; Prefect's flow-run logs keep the traceback all the same. Also `-h` and `--version`.

The processes talk to this session's Prefect API rather than each starting its own (~25 s)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

SCRIPT = str(Path(sys.executable).parent / "thresher")


def thresher(*args: str, debug_env: bool = False, script: list[str] | None = None) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "100"}
    env.pop("THRESHER_DEBUG", None)
    if debug_env:
        env["THRESHER_DEBUG"] = "1"
    return subprocess.run((script or [SCRIPT]) + list(args), capture_output=True, text=True, timeout=300, env=env)


def assert_one_line_error(out: subprocess.CompletedProcess, *expected: str) -> str:
    """The `error:` line, after checking the whole of stderr: that line, an optional `hint:` line."""
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert "Traceback" not in out.stderr, out.stderr
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: "), out.stderr
    assert len(lines) == 1 or lines[1].startswith("hint: "), out.stderr
    for text in expected:
        assert text in lines[0], out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def scored_run(prefect_harness, sample_data, tmp_path_factory) -> Path:
    """A small run, ingested and scored with the heuristics by the real command."""
    tmp = tmp_path_factory.mktemp("errors")
    source = tmp / "web.jsonl"
    source.write_text("\n".join((sample_data / "c4_sample.jsonl").read_text(encoding="utf-8").splitlines()[:20])
                      + "\n", encoding="utf-8")
    run = tmp / "run"
    for args in (("ingest", str(run), str(source)), ("score", str(run), "-s", "heuristics")):
        out = thresher(*args)
        assert out.returncode == 0, out.stdout + out.stderr
    return run


def bad_selection(tmp_path: Path, name: str) -> Path:
    recipe = tmp_path / "select.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: {name}
        table: documents
        where:
          - name: long_enough
            sql: "no_such_column > 3"
        """), encoding="utf-8")
    return recipe


def test_a_mistyped_scorer_is_one_line_with_a_hint(scored_run):
    out = thresher("score", str(scored_run), "-s", "heuristix")
    assert_one_line_error(out, "heuristix", "heuristics")  # the names it knows, the right one among them
    assert out.stderr.splitlines()[1] == "hint: `thresher scorers` lists every scorer with its parameters"


@pytest.mark.usefixtures("prefect_harness")
def test_a_missing_input_file_says_no_such_file(tmp_path):
    missing = tmp_path / "absent.jsonl"
    line = assert_one_line_error(thresher("ingest", str(tmp_path / "run"), str(missing)))
    assert line == f"error: no such file: {missing}"
    # A glob keeps its own message: nothing is missing, the pattern just matched nothing.
    glob = str(tmp_path / "nothing" / "*.jsonl")
    assert_one_line_error(thresher("ingest", str(tmp_path / "run"), glob), glob, "matches no input file")


def test_a_bad_sql_step_is_one_line_and_its_traceback_stays_in_the_prefect_log(scored_run, tmp_path):
    name = f"bad_{uuid.uuid4().hex[:8]}"
    out = thresher("select", str(scored_run), str(bad_selection(tmp_path, name)))
    line = assert_one_line_error(out, name, "long_enough", "no_such_column")
    assert "LINE 1" not in line  # DuckDB's query excerpt needs its line breaks: --debug shows it
    assert out.stderr.splitlines()[1].startswith("hint: Candidate bindings:")  # columns the step could use

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import LogSort

    with get_client(sync_client=True) as client:
        logs = client.read_logs(sort=LogSort.TIMESTAMP_DESC, limit=200)
    logged = [log.message for log in logs if name in log.message and "Traceback" in log.message]
    assert logged, "the flow-run logs lost the traceback"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_prints_the_traceback_once(scored_run, tmp_path, how):
    name = f"bad_{uuid.uuid4().hex[:8]}"
    recipe = str(bad_selection(tmp_path, name))
    args = ("--debug", "select", str(scored_run), recipe) if how == "flag" else ("select", str(scored_run), recipe)
    out = thresher(*args, debug_env=how == "env")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("Traceback (most recent call last)") == 1, out.stderr
    assert "LINE 1:" in out.stderr  # the full message, excerpt included, is in the traceback
    assert out.stderr.splitlines()[-2].startswith("error: ") and name in out.stderr.splitlines()[-2]


@pytest.mark.usefixtures("prefect_harness")
def test_a_bug_keeps_its_traceback_without_debug(tmp_path):
    # Not a user error: a KeyError inside a real flow run, called the way every command calls one.
    program = tmp_path / "buggy.py"
    program.write_text(textwrap.dedent("""\
        import typer
        from prefect import flow

        from thresher.cli.run import prefect_logging, run_flow

        @flow
        def buggy_flow(key: str) -> int:
            return {}[key]

        def main(key: str) -> None:
            prefect_logging("WARNING")
            run_flow(buggy_flow, key)

        typer.run(main)
        """), encoding="utf-8")
    out = thresher("missing_key_in_buggy_flow", script=[sys.executable, str(program)])
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" in out.stderr and "KeyError: 'missing_key_in_buggy_flow'" in out.stderr
    # Printed once by the command, not again by Prefect's engine on the console.
    assert "Encountered exception during execution" not in out.stderr, out.stderr


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["score", "-h"], ["judge", "run", "-h"]])
def test_h_is_help(args):
    out = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: thresher" in out.stdout and "--help" in out.stdout


def test_version():
    out = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"thresher {importlib.metadata.version('thresher')}\n"


def _command_paths(command, prefix=()):
    yield prefix
    if hasattr(command, "commands"):  # a group (typer's click may be vendored: no isinstance)
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*prefix, name))


def test_every_command_renders_its_help():
    """Help text is rich markup: a literal `[/PATH]` in a help string once made `ingest --help` crash."""
    import typer
    from typer.testing import CliRunner

    from thresher.cli import app

    paths = list(_command_paths(typer.main.get_command(app)))
    assert len(paths) > 40 and ("ingest",) in paths
    failures = {}
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        if result.exit_code != 0 or "Usage:" not in result.output:
            failures[" ".join(path)] = repr(result.exception) or result.output[-300:]
    assert not failures, failures
