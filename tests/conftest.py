"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


DATA = Path(__file__).resolve().parent / "data"


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
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".prefect-results", "inputs"))
    return target
