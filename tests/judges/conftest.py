from __future__ import annotations

import pytest

from tests.lm_models import QWEN, SMOLLM2, backend


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M in float32, shared with tests/llm through thresher's backend cache."""
    b = backend(SMOLLM2, dtype="float32")
    _ = b.model
    return b


@pytest.fixture(scope="session")
def qwen():
    """The packaged Qwen2.5-Coder-0.5B judge with the default device/dtype (bf16 on CPUs with
    native bf16, else float32), loaded once per session."""
    b = backend(QWEN)
    _ = b.model
    return b
