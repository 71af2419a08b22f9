"""The OpenAI-compatible HTTP backend: against a real server (`transformers serve` with SmolLM2 on
127.0.0.1) for what only a real server shows, and for retries, time-outs and concurrency through a
proxy that answers with the fake model (tests/fake_backend.py) and counts, fails or holds requests."""

from __future__ import annotations

import asyncio

import pytest

from tests.fake_backend import FakeBackend
from tests.llm.proxy import FAKE_TOP_TOKENS, Proxy
from thresher.llm import CapabilityError, GenerationParams, LMError, LMTimeoutError
from thresher.llm.openai_http import OpenAIHTTPBackend

QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 3 + 4?", "Say hello.",
             "Name a planet.", "What colour is grass?"]
SHORT = GenerationParams(max_new_tokens=6)


def chat(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


SERVED = "served-fake"


@pytest.fixture(scope="module")
def fake():
    return FakeBackend(SERVED)


@pytest.fixture(scope="module")
def proxy(fake):
    with Proxy(fake=fake, served_model=SERVED) as p:
        yield p


@pytest.fixture
def via_proxy(proxy):
    proxy.reset()

    def make(**options) -> OpenAIHTTPBackend:
        options.setdefault("backoff", 0.05)
        return OpenAIHTTPBackend(SERVED, proxy.url, **options)

    yield make
    proxy.reset()  # releases requests a test left held


def test_real_server_generates_what_the_local_backend_generates(served_smollm2, smollm2):
    root, model = served_smollm2
    http = OpenAIHTTPBackend(model, root + "/v1", concurrency=2)
    prompts = [chat(q) for q in QUESTIONS[:2]]
    params = GenerationParams(max_new_tokens=12)
    remote = http.generate(prompts, params)
    local = [smollm2.generate([p], params)[0] for p in prompts]  # one at a time: no padding
    assert [r.text for r in remote] == [x.text for x in local]
    assert all(r.prompt_tokens == x.prompt_tokens for r, x in zip(remote, local))


def test_the_server_generates_what_the_model_generates(via_proxy, fake):
    replies = via_proxy(concurrency=2).generate([chat(q) for q in QUESTIONS], SHORT)
    local = fake.generate([chat(q) for q in QUESTIONS], SHORT)
    assert [(r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) for r in replies] == [
        (x.text, x.finish_reason, x.prompt_tokens, x.completion_tokens) for x in local]


def test_concurrency_bound_is_respected(via_proxy, proxy):
    proxy.gate = 3  # every request waits (at most 10 s) until 3 are in flight together
    backend = via_proxy(concurrency=3)
    replies = backend.generate([chat(q) for q in QUESTIONS], SHORT)
    assert len(replies) == len(QUESTIONS) and all(r.text for r in replies)
    assert proxy.requests == len(QUESTIONS)
    # the bound is reached (requests really overlap) and never passed
    assert proxy.max_in_flight == 3 and backend.stats.max_in_flight == 3


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
    proxy.hold = True  # no request is answered until the test ends: only the client's time-out ends a call
    backend = via_proxy(timeout=0.4, max_retries=1)
    with pytest.raises(LMTimeoutError, match=r"timed out after 0.4 s on each of 2 attempt\(s\)"):
        backend.generate([chat(QUESTIONS[0])], SHORT)
    assert (proxy.requests, proxy.answered) == (2, 0)
    assert backend.stats.retries == 1 and backend.stats.failures == 1


def test_sync_calls_work_inside_a_running_event_loop(via_proxy):
    backend = via_proxy()

    async def caller():
        return backend.generate([chat(QUESTIONS[2])], SHORT)  # a sync call from async code

    assert asyncio.run(caller())[0].text


def test_async_face(via_proxy):
    backend = via_proxy(concurrency=2)
    replies = asyncio.run(backend.agenerate([chat(q) for q in QUESTIONS[:2]], SHORT))
    assert len(replies) == 2 and all(r.completion_tokens for r in replies)


def test_next_token_logprobs_from_a_server_that_returns_top_logprobs(via_proxy, fake):
    """The judges' expected mode over HTTP: the candidates' log-probabilities are the model's, read
    from `top_logprobs` (the reply prefilled with a trailing assistant message); a candidate outside
    the server's top-k is -inf."""
    prompts = [chat(q) for q in QUESTIONS[:3]]
    digits = list(FAKE_TOP_TOKENS[:6])
    backend = via_proxy(logprobs=True, top_logprobs=len(FAKE_TOP_TOKENS), prefill="trailing-assistant")
    remote = backend.next_token_logprobs(prompts, digits, assistant_prefix="Score: ")
    local = fake.next_token_logprobs(prompts, FAKE_TOP_TOKENS, assistant_prefix="Score: ")
    for r, x in zip(remote, local):
        assert r.logprobs == pytest.approx({d: x.logprobs[d] for d in digits})
    top2 = via_proxy(logprobs=True, top_logprobs=2).next_token_logprobs(prompts[:1], digits)[0].logprobs
    everything = fake.next_token_logprobs(prompts[:1], FAKE_TOP_TOKENS)[0].logprobs
    served = sorted(everything, key=everything.get)[-2:]
    assert {d for d, v in top2.items() if v != float("-inf")} == set(served) & set(digits)


def test_logprobs_are_not_assumed(via_proxy):
    backend = via_proxy()
    with pytest.raises(CapabilityError, match="logprobs=True"):
        backend.next_token_logprobs([chat("x")], ["1"])
    with pytest.raises(CapabilityError, match="prefill"):
        via_proxy(logprobs=True).next_token_logprobs([chat("x")], ["1"], assistant_prefix="Score: ")
