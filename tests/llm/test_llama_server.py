"""Expected-mode judging over HTTP against a real server that returns `top_logprobs`: llama.cpp's
`llama-server` (built by `make llama-server`, which `make test` runs) serving the packaged
Qwen2.5-Coder-0.5B-Instruct GGUF on 127.0.0.1.

The local transformers backend runs the same GGUF weights (dequantised to float32), so the two must
give nearly the same next-token distribution over the score digits and nearly the same judge scores;
llama.cpp quantises activations in its dot products, hence "nearly"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.llm.servers import free_port, running_server
from tests.lm_models import QWEN, backend, require_packaged

REPO = Path(__file__).resolve().parents[2]
LLAMA_SERVER = REPO / ".tools" / "bin" / "llama-server"
SERVED = "qwen-judge"
DIGITS = [str(d) for d in range(6)]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """(OpenAI base URL, served model name) of a llama-server on a free port, stopped at the end."""
    from thresher.llm.packaged import gguf_path

    if not LLAMA_SERVER.exists():
        pytest.skip(f"{LLAMA_SERVER} is not built: `make llama-server` (part of `make test`) builds it")
    require_packaged(QWEN)
    port = free_port()
    command = [str(LLAMA_SERVER), "-m", str(gguf_path(QWEN)), "--alias", SERVED, "--host", "127.0.0.1",
               "--port", str(port), "-c", "4096", "-np", "1", "-t", "2", "--no-webui"]
    with running_server(command, port, tmp_path_factory.mktemp("llama-server") / "server.log",
                        name="llama-server", timeout=120) as root:
        yield f"{root}/v1", SERVED


@pytest.fixture(scope="module")
def qwen_local():
    """The session's shared local backend for the packaged judge (the one judges with model=QWEN use)."""
    b = backend(QWEN)
    _ = b.model
    return b


def _http(llama_server, **options):
    from thresher.llm.openai_http import OpenAIHTTPBackend

    base_url, served = llama_server
    return OpenAIHTTPBackend(served, base_url, logprobs=True, top_logprobs=20, prefill="trailing-assistant",
                             tokenizer=QWEN, **options)


def _probabilities(replies) -> np.ndarray:
    logprobs = np.array([[r.logprobs[d] for d in DIGITS] for r in replies], dtype=float)
    p = np.exp(logprobs - logprobs.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_the_server_returns_the_score_distribution_the_local_model_gives(llama_server, qwen_local):
    chats = [[{"role": "user", "content": f"Rate from 0 to 5 how well this answers 'What is {q}?': {a}"}]
             for q, a in [("2 + 2", "4"), ("the capital of France", "Berlin is a city in Germany."),
                          ("photosynthesis", "Plants turn light, water and CO2 into sugar and oxygen."),
                          ("a prime number", "banana")]]
    remote = _probabilities(_http(llama_server).next_token_logprobs(chats, DIGITS, assistant_prefix="Score: "))
    local = _probabilities(qwen_local.next_token_logprobs(chats, DIGITS, assistant_prefix="Score: "))
    # Measured: total variation 0.005-0.018 per prompt (near-tied digits may swap places, so no argmax check).
    total_variation = 0.5 * np.abs(remote - local).sum(axis=1)
    assert total_variation.max() < 0.05, (remote.round(3), local.round(3))


def test_an_expected_mode_judge_over_http_scores_like_the_local_one(llama_server, qwen_local, sample_data):
    """The AlpaGasus judge through the HTTP backend (expected mode, logprobs from the server) on real
    Alpaca answers and degraded copies gives the scores the local backend gives, within the
    quantisation noise."""
    from thresher.judges.degrade import degraded_pairs
    from thresher.judges.judges import build_judge

    records = json.loads((sample_data / "alpaca_sample.json").read_text())
    rows = [r.fields() for r in degraded_pairs(records, 3, seed=0, max_words=60)]
    base_url, served = llama_server
    http_judge = build_judge("alpagasus", model=served, backend="openai", max_input_tokens=128,
                             backend_options={"base_url": base_url, "logprobs": True, "top_logprobs": 20,
                                              "prefill": "trailing-assistant", "tokenizer": QWEN})
    local_judge = build_judge("alpagasus", model=QWEN, max_input_tokens=128)
    remote = np.array([j.score for j in http_judge.judge_rows(rows)], dtype=float)
    local = np.array([j.score for j in local_judge.judge_rows(rows)], dtype=float)
    assert not np.isnan(remote).any(), remote
    # Measured: at most 0.02 apart on a 0-5 scale, where these rows spread over 0.3.
    assert np.abs(remote - local).max() < 0.1, (remote.round(2), local.round(2))
    assert np.corrcoef(remote, local)[0, 1] > 0.9, (remote.round(2), local.round(2))
