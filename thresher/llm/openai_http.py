"""Any OpenAI-compatible chat-completions server: vLLM, llama.cpp's server, Ollama, `transformers serve`.

The core is async (`openai.AsyncOpenAI`): a call's prompts are sent concurrently, at most
`concurrency` requests in flight (an `asyncio.Semaphore` held per attempt, released while backing
off), each attempt limited to `timeout` seconds. Retryable failures (timeouts, connection errors,
408/409/425/429 and 5xx) are retried up to `max_retries` times with exponential backoff and full
jitter, honouring a server's `Retry-After` up to `backoff_max`; anything else (400, 401, 404, a
malformed reply) fails at once. When the retries run out the error says what was requested,
where, how many attempts were made and the last failure (`LMTimeoutError` for timeouts).
The openai client's own retries are turned off so these rules are the only ones.

The sync methods of `LMBackend` run the async core on a private event loop (or, when called from
inside a running loop, on a helper thread); async callers use `agenerate` /
`anext_token_logprobs` directly.

Capabilities are declared, not guessed:
- GENERATE always;
- NEXT_TOKEN_LOGPROBS with `logprobs=True`, for servers that return `top_logprobs` (vLLM,
  llama.cpp's server, OpenAI; `transformers serve` rejects `logprobs`). A candidate outside the
  server's top `top_logprobs` tokens gets -inf. Prefilling the assistant's reply
  (`assistant_prefix`) needs `prefill="vllm"` (`continue_final_message`) or
  `prefill="trailing-assistant"` (servers that continue a final assistant message, e.g.
  llama.cpp's server);
- TOKENIZE with `tokenizer=<model reference>` (a local tokenizer of the served model).
SCORE (prompt log-probabilities) is not offered over HTTP.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from thresher.llm.protocol import (
    CandidateLogprobs,
    Capability,
    CapabilityError,
    Chat,
    ContinuationScore,
    Generation,
    GenerationParams,
    LMError,
    LMTimeoutError,
    trim_at_stop,
    validate_chat,
)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class _Stats:
    """Request counters, safe to update from the event loop and read from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0  # attempts sent
        self.retries = 0
        self.failures = 0  # prompts that failed after all attempts
        self.in_flight = 0
        self.max_in_flight = 0

    def as_dict(self) -> dict:
        with self.lock:
            return {k: getattr(self, k) for k in ("requests", "retries", "failures", "max_in_flight")}


class OpenAIHTTPBackend:
    """`LMBackend` over an OpenAI-compatible server (see the module doc)."""

    kind = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        logprobs: bool = False,
        top_logprobs: int = 20,
        prefill: str = "none",
        tokenizer: str | None = None,
        seed: int | None = 0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if prefill not in ("none", "vllm", "trailing-assistant"):
            raise ValueError(f"prefill must be none, vllm or trailing-assistant, got {prefill!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        # The key is read from the environment at request time and never stored in parameters
        # (which are hashed into cache keys and written to run.json).
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.prefill = prefill
        self.tokenizer_ref = tokenizer
        self.seed = seed
        self._tokenizer: Any = None
        self.stats = _Stats()

    def __repr__(self) -> str:
        return f"OpenAIHTTPBackend({self.model!r}, base_url={self.base_url!r}, concurrency={self.concurrency})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_tokenizer=None, stats=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.stats = _Stats()

    @property
    def model_id(self) -> str:
        # The server's weights cannot be fingerprinted from here: the served model name and the
        # address stand for them. Serve a changed model under a new name to invalidate caches.
        return f"openai:{self.base_url}:{self.model}"

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.GENERATE}
        if self.logprobs:
            caps.add(Capability.NEXT_TOKEN_LOGPROBS)
        if self.tokenizer_ref:
            caps.add(Capability.TOKENIZE)
        return frozenset(caps)

    def close(self) -> None:
        self._tokenizer = None

    # -- tokenisation (local tokenizer of the served model) ---------------------------------------

    @property
    def tokenizer(self):
        if not self.tokenizer_ref:
            raise CapabilityError(f"{self!r} has no local tokenizer: pass tokenizer=<model reference>")
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from thresher.llm.packaged import resolve_llm

            self._tokenizer = AutoTokenizer.from_pretrained(str(resolve_llm(self.tokenizer_ref)), local_files_only=True)
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= max_tokens:
            return text, False
        return text[: encoded["offset_mapping"][max_tokens - 1][1]], True

    def score(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationScore]:
        raise CapabilityError(f"{self!r} does not score continuations (no prompt log-probabilities over HTTP)")

    # -- the async core ----------------------------------------------------------------------------

    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(self.api_key_env) or "not-needed",
            timeout=self.timeout,
            max_retries=0,
        )

    def _retry_delay(self, attempt: int, exc: BaseException) -> float:
        delay = random.uniform(0, min(self.backoff_max, self.backoff * (2**attempt)))
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.backoff_max))
            except ValueError:
                pass
        return delay

    async def _with_retries(self, semaphore: asyncio.Semaphore, what: str, send: Callable[[], Awaitable[T]]) -> T:
        import openai

        last: BaseException | None = None
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            async with semaphore:
                with self.stats.lock:
                    self.stats.requests += 1
                    self.stats.in_flight += 1
                    self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
                try:
                    return await send()
                except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                    last = exc
                except openai.APIStatusError as exc:
                    if exc.status_code not in RETRYABLE_STATUS:
                        with self.stats.lock:
                            self.stats.failures += 1
                        raise LMError(
                            f"{what} at {self.base_url} failed with HTTP {exc.status_code} "
                            f"(not retryable): {_excerpt(exc)}"
                        ) from exc
                    last = exc
                finally:
                    with self.stats.lock:
                        self.stats.in_flight -= 1
            if attempt + 1 < attempts:
                with self.stats.lock:
                    self.stats.retries += 1
                await asyncio.sleep(self._retry_delay(attempt, last))
        with self.stats.lock:
            self.stats.failures += 1
        if isinstance(last, openai.APITimeoutError):
            raise LMTimeoutError(
                f"{what} at {self.base_url} timed out after {self.timeout:g} s on each of {attempts} attempt(s)"
            ) from last
        detail = f"HTTP {last.status_code}: {_excerpt(last)}" if isinstance(last, openai.APIStatusError) else repr(last)
        raise LMError(f"{what} at {self.base_url} failed after {attempts} attempt(s); last error {detail}") from last

    def _request_kwargs(self, params: GenerationParams) -> dict:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        if params.top_p != 1.0:
            kwargs["top_p"] = params.top_p
        if params.stop:
            kwargs["stop"] = list(params.stop)
        seed = params.seed if params.seed is not None else self.seed
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs

    async def agenerate(self, prompts: Sequence[Chat], params: GenerationParams) -> list[Generation]:
        for chat in prompts:
            validate_chat(chat)
        semaphore = asyncio.Semaphore(self.concurrency)
        kwargs = self._request_kwargs(params)
        async with self._client() as client:

            async def one(chat: Chat) -> Generation:
                reply = await self._with_retries(
                    semaphore, "chat completion", lambda: client.chat.completions.create(messages=chat, **kwargs)
                )
                return _generation(reply, params)

            return list(await asyncio.gather(*(one(chat) for chat in prompts)))

    async def anext_token_logprobs(
        self, prompts: Sequence[Chat], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]:
        if not self.logprobs:
            raise CapabilityError(f"{self!r} was not told its server returns logprobs (logprobs=True)")
        if assistant_prefix and self.prefill == "none":
            raise CapabilityError(
                f"{self!r} cannot prefill the reply with {assistant_prefix!r}: set prefill='vllm' or "
                "'trailing-assistant' for a server that continues a final assistant message"
            )
        for chat in prompts:
            validate_chat(chat)
        semaphore = asyncio.Semaphore(self.concurrency)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if assistant_prefix and self.prefill == "vllm":
            kwargs["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}

        async with self._client() as client:

            async def one(chat: Chat) -> CandidateLogprobs:
                messages = list(chat)
                if assistant_prefix:
                    messages.append({"role": "assistant", "content": assistant_prefix})
                reply = await self._with_retries(
                    semaphore, "next-token logprobs",
                    lambda: client.chat.completions.create(messages=messages, **kwargs),
                )
                return _candidate_logprobs(reply, candidates)

            return list(await asyncio.gather(*(one(chat) for chat in prompts)))

    # -- sync face of the protocol -----------------------------------------------------------------

    def generate(self, prompts: Sequence[Chat], params: GenerationParams) -> list[Generation]:
        return _run(lambda: self.agenerate(prompts, params))

    def next_token_logprobs(
        self, prompts: Sequence[Chat], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]:
        return _run(lambda: self.anext_token_logprobs(prompts, candidates, assistant_prefix=assistant_prefix))


def _excerpt(exc: Any, limit: int = 300) -> str:
    body = getattr(exc, "body", None)
    text = str(body if body is not None else getattr(exc, "message", exc))
    return text if len(text) <= limit else text[:limit] + "…"


def _generation(reply: Any, params: GenerationParams) -> Generation:
    if not getattr(reply, "choices", None):
        raise LMError(f"malformed chat completion (no choices): {str(reply)[:300]}")
    choice = reply.choices[0]
    text = choice.message.content or ""
    # Servers differ in whether the stop string is included; cut it either way.
    text, _ = trim_at_stop(text, params.stop)
    usage = getattr(reply, "usage", None)
    return Generation(
        text=text,
        finish_reason="length" if choice.finish_reason == "length" else "stop",
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )


def _candidate_logprobs(reply: Any, candidates: Sequence[str]) -> CandidateLogprobs:
    try:
        first = reply.choices[0].logprobs.content[0]
        tops = list(first.top_logprobs or []) or [first]
    except (AttributeError, IndexError, TypeError):
        raise LMError(
            "the server returned no logprobs for the first token; does it support logprobs/top_logprobs?"
        ) from None
    values = {c: -math.inf for c in candidates}
    for entry in tops:
        token = (entry.token or "").strip()
        if token in values:
            values[token] = float(_logaddexp(values[token], entry.logprob))
    usage = getattr(reply, "usage", None)
    return CandidateLogprobs(values, prompt_tokens=getattr(usage, "prompt_tokens", None))


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, inside or outside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="thresher-openai-http", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def wait_for_server(base_url: str, timeout: float = 120.0, path: str = "/models") -> None:
    """Poll until the server answers (any HTTP status below 500) or raise LMTimeoutError."""
    import httpx

    deadline = time.monotonic() + timeout
    url = base_url.rstrip("/") + path
    last: Exception | str = "no attempt"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5.0)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise LMTimeoutError(f"server at {base_url} did not answer {path} within {timeout:g} s (last: {last})")
