"""Issue 14, item 4: one writer per run directory, readers never blocked, stale locks never stick."""

import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from thresher.cli import app
from thresher.storage.catalog import open_catalog
from thresher.storage.run_lock import LOCK_NAME, RunLocked, writer_lock

from .test_catalog import run  # noqa: F401

HOLD = """
import sys, time
from thresher.storage.run_lock import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(run):  # noqa: F811
    """Another process holding the run's writer lock."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run.root)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_writer_gets_a_clear_error_naming_the_holder(run, holder):  # noqa: F811
    with pytest.raises(RunLocked, match=f"being written by pid {holder.pid} on "):
        with writer_lock(run.root):
            pass


@pytest.mark.usefixtures("prefect_for_cli")  # Prefect's logging must not bind to CliRunner's stream
def test_a_second_writer_command_fails_before_any_work(run, holder):  # noqa: F811
    before = sorted(p.name for p in (run.root / "scores").iterdir())
    result = CliRunner().invoke(app, ["score", str(run.root), "--scorer", "gopher"])
    assert result.exit_code == 2, result.output
    assert f"pid {holder.pid}" in result.output
    assert sorted(p.name for p in (run.root / "scores").iterdir()) == before


def test_readers_are_not_blocked_by_a_writer(run, holder):  # noqa: F811
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*) FROM documents").fetchall() == [(3,)]


def test_a_killed_holder_leaves_no_stale_lock(run, holder):  # noqa: F811
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert "pid" in (run.root / LOCK_NAME).read_text()  # the dead holder's note is still there
    with writer_lock(run.root):
        assert f'"pid": {os.getpid()}' in (run.root / LOCK_NAME).read_text()


def test_the_lock_is_reentrant_within_a_process_and_released_after(run):  # noqa: F811
    with writer_lock(run.root), writer_lock(run.root):
        pass
    probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(run.root)],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "held", probe.stderr


def test_a_flow_that_writes_the_run_is_refused_while_another_process_writes_it(run, holder, prefect_harness):  # noqa: F811
    from thresher.config_base import SelectionRecipe
    from thresher.flows.select import select_flow

    with pytest.raises(RunLocked):
        select_flow(str(run.root), [SelectionRecipe(name="all")])
    assert not (run.root / "selections").exists()
