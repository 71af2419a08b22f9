"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# OpenMP threads that wait for work sleep instead of spinning, set before anything imports torch
# (and inherited by the CLI and kill-test children). On two cores shared with the Prefect server,
# child processes and other work, spinning threads made the model tests several times slower
# (tests/llm/test_transformers_backend.py under load: 116-132 s spinning, 17-21 s passive, 18-20 s
# with one thread); forcing one thread instead cost the demo fixture 242 s against 153 s when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


DATA = Path(__file__).resolve().parent / "data"

# `make test` runs on two pytest-xdist workers with `--dist loadgroup`. The tests that use the demo
# run (about 3 minutes to build, once per worker that asks for it) share one group and so one worker;
# every other test is grouped with its module, so module-scoped fixtures are built once and tests that
# build on an earlier test's output in the same module stay in order on one worker.
COSTLY_SESSION_FIXTURES = {"demo_result": "demo"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks into the node ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        groups = [group for fixture, group in COSTLY_SESSION_FIXTURES.items() if fixture in item.fixturenames]
        item.add_marker(pytest.mark.xdist_group(groups[0] if groups else item.module.__name__))


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """Small real samples shipped with the tests (`tests/data/README.md` gives sources and licences),
    so a plain clone runs the whole suite."""
    return DATA


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session: starting one costs 10-25 s."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_result(prefect_harness, tmp_path_factory) -> dict:
    """The embedded demo (40 conversations), curated once for the whole session by the real flows:
    every stage, real models. Tests only read it; a test that writes copies it first (`copy_run`)."""
    from thresher.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo") / "demo", conversations=40)


@pytest.fixture(scope="session")
def demo_run(demo_result):
    from thresher.storage.run_dir import RunDir

    return RunDir(demo_result["run_dir"])


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run directory to write into (runs hold only relative paths, so a copy works);
    the Prefect cache and the demo's raw inputs stay behind."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".task-results", "inputs"))
    return target


class FakeLM:
    """Selects the fake language model of tests/fake_backend.py (see the `fake_lm` fixture)."""

    KIND = "fake"

    def spec(self, model: str = "fake", **options):
        from thresher.llm import BackendSpec

        return BackendSpec(self.KIND, model, options)

    def backend(self, model: str = "fake", **options):
        """The process-wide FakeBackend for (model, options): the object judges built from the same
        `backend="fake", model=..., backend_options=...` get, so its counters are theirs."""
        from thresher.llm import get_backend

        return get_backend(self.spec(model, **options))

    def as_transformers(self, model: str, **options):
        """A FakeBackend that `BackendSpec("transformers", model, options)` returns in this process: for
        configs that accept only the real kinds (an augment `LMSpec`). `model` must name no real model."""
        from tests.fake_backend import FakeBackend
        from thresher.llm import BackendSpec, get_backend, register_backend

        spec = BackendSpec("transformers", model, options)
        register_backend(spec, FakeBackend(model, **options))
        return get_backend(spec)


@pytest.fixture(scope="session")
def fake_lm():
    """Backend kind "fake" (tests.fake_backend.FakeBackend), registered for the session: judges, IFD
    and augmenters given `backend="fake"` build it through `thresher.llm.get_backend`, in this process
    (Prefect's default thread task runner included; not in subprocesses)."""
    from thresher.llm import BACKEND_KINDS

    BACKEND_KINDS[FakeLM.KIND] = "tests.fake_backend:FakeBackend"
    try:
        yield FakeLM()
    finally:
        BACKEND_KINDS.pop(FakeLM.KIND, None)


@pytest.fixture(scope="session")
def prefect_for_cli(prefect_harness):
    """The session's Prefect API, with Prefect's logging set up outside any CliRunner: a flow that is
    the process's first sets logging up on its stream, which CliRunner closes after the command."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()
