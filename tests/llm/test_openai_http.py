"""The OpenAI-compatible HTTP backend against a real server (`transformers serve` with SmolLM2 on
127.0.0.1), directly and through a proxy that counts, fails or delays requests."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.llm.proxy import Proxy
from thresher.llm import CapabilityError, GenerationParams, LMError, LMTimeoutError
from thresher.llm.openai_http import OpenAIHTTPBackend

QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 3 + 4?", "Say hello.",
             "Name a planet.", "What colour is grass?"]
SHORT = GenerationParams(max_new_tokens=6)


def chat(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def proxy(served_smollm2):
    root, _ = served_smollm2
    with Proxy(root) as p:
        yield p


@pytest.fixture
def via_proxy(proxy, served_smollm2):
    proxy.reset()
    _, model = served_smollm2

    def make(**options) -> OpenAIHTTPBackend:
        options.setdefault("backoff", 0.05)
        return OpenAIHTTPBackend(model, proxy.url, **options)

    return make


def test_real_server_generates_what_the_local_backend_generates(served_smollm2, smollm2):
    root, model = served_smollm2
    http = OpenAIHTTPBackend(model, root + "/v1", concurrency=2)
    prompts = [chat(q) for q in QUESTIONS[:2]]
    params = GenerationParams(max_new_tokens=12)
    remote = http.generate(prompts, params)
    local = [smollm2.generate([p], params)[0] for p in prompts]  # one at a time: no padding
    assert [r.text for r in remote] == [x.text for x in local]
    assert all(r.prompt_tokens == x.prompt_tokens for r, x in zip(remote, local))


def test_concurrency_bound_is_respected(via_proxy, proxy):
    backend = via_proxy(concurrency=3)
    replies = backend.generate([chat(q) for q in QUESTIONS], SHORT)
    assert len(replies) == len(QUESTIONS) and all(r.text for r in replies)
    assert proxy.requests == len(QUESTIONS)
    assert proxy.max_in_flight <= 3 and backend.stats.max_in_flight <= 3
    # `transformers serve` answers one request at a time, so a bound of 3 is reached
    assert proxy.max_in_flight >= 2


def test_503s_are_retried_with_backoff(via_proxy, proxy):
    proxy.fail_first = 2
    backend = via_proxy(max_retries=3)
    reply = backend.generate([chat(QUESTIONS[0])], SHORT)[0]
    assert reply.text
    assert proxy.requests == 3 and backend.stats.retries == 2 and backend.stats.failures == 0


def test_persistent_503s_give_up_with_a_clear_error(via_proxy, proxy):
    proxy.always_status = 503
    backend = via_proxy(max_retries=2)
    with pytest.raises(LMError, match=r"failed after 3 attempt\(s\); last error HTTP 503"):
        backend.generate([chat(QUESTIONS[0])], SHORT)
    assert proxy.requests == 3


def test_client_errors_are_not_retried(via_proxy, proxy):
    proxy.always_status = 400
    backend = via_proxy(max_retries=4)
    with pytest.raises(LMError, match="HTTP 400 \\(not retryable\\)"):
        backend.generate([chat(QUESTIONS[0])], SHORT)
    assert proxy.requests == 1


def test_a_wrong_model_name_is_reported_by_the_real_server(served_smollm2):
    root, _ = served_smollm2
    backend = OpenAIHTTPBackend("not-the-served-model", root + "/v1", max_retries=3)
    with pytest.raises(LMError, match="not retryable"):
        backend.generate([chat(QUESTIONS[0])], SHORT)
    assert backend.stats.requests == 1


def test_timeouts_are_retried_then_raised_clearly(via_proxy, proxy):
    proxy.delay = 3.0
    backend = via_proxy(timeout=0.4, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(LMTimeoutError, match=r"timed out after 0.4 s on each of 2 attempt\(s\)"):
        backend.generate([chat(QUESTIONS[0])], SHORT)
    assert time.perf_counter() - started < 2.5
    assert backend.stats.retries == 1


def test_sync_calls_work_inside_a_running_event_loop(via_proxy):
    backend = via_proxy()

    async def caller():
        return backend.generate([chat(QUESTIONS[2])], SHORT)  # a sync call from async code

    assert asyncio.run(caller())[0].text


def test_async_face(via_proxy):
    backend = via_proxy(concurrency=2)
    replies = asyncio.run(backend.agenerate([chat(q) for q in QUESTIONS[:2]], SHORT))
    assert len(replies) == 2 and all(r.completion_tokens for r in replies)


def test_logprobs_are_not_assumed(via_proxy):
    backend = via_proxy()
    with pytest.raises(CapabilityError, match="logprobs=True"):
        backend.next_token_logprobs([chat("x")], ["1"])
    with pytest.raises(CapabilityError, match="prefill"):
        via_proxy(logprobs=True).next_token_logprobs([chat("x")], ["1"], assistant_prefix="Score: ")
