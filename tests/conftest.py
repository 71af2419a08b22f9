"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real text in ../shared/data; tests that need it skip when it is absent."""
    path = Path(os.environ.get("THRESHER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "c4_sample.jsonl").is_file():
        pytest.skip(f"real sample data not found at {path} (set THRESHER_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session: starting one costs 10-25 s."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
