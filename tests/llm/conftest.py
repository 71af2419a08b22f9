from __future__ import annotations

import pytest

from tests.llm.servers import free_port, running_server
from tests.lm_models import SMOLLM2, backend


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M in float32 (exact comparisons), loaded once per session."""
    b = backend(SMOLLM2, dtype="float32")
    _ = b.model
    return b


@pytest.fixture(scope="session")
def served_smollm2(tmp_path_factory):
    """A real OpenAI-compatible server: `transformers serve` with SmolLM2 on 127.0.0.1.

    Yields (server root URL, served model name). The process is started once per session and
    terminated at the end."""
    import os
    import sys
    from pathlib import Path

    from tests.lm_models import require_packaged
    from thresher.llm.packaged import resolve_llm

    require_packaged(SMOLLM2)
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("`transformers serve` needs fastapi, uvicorn, pydantic and openai")
    cli = Path(sys.executable).parent / "transformers"
    if not cli.exists():
        pytest.skip(f"no transformers CLI next to {sys.executable}")
    model_dir = str(resolve_llm(SMOLLM2))
    port = free_port()
    hub_cache = tmp_path_factory.mktemp("hf-hub-cache")  # `serve` lists models from an existing hub cache
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "TRANSFORMERS_VERBOSITY": "error",
           "TQDM_DISABLE": "1"}
    command = [str(cli), "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
               "--log-level", "error"]
    with running_server(command, port, tmp_path_factory.mktemp("serve") / "serve.log", name="transformers serve",
                        env=env) as root:
        yield root, model_dir
