"""The one protocol every language-model backend implements (DESIGN.md section 4, "LM backend").

Judges, IFD and augmenters depend on this protocol and on *capabilities*, never on a backend class:
a judge that needs next-token probabilities asks `require(backend, Capability.NEXT_TOKEN_LOGPROBS)`
and works with any backend that declares it (local transformers, vLLM offline, llama.cpp, or an
OpenAI-compatible server that returns `top_logprobs`).

Every method takes a *batch* (a sequence of prompts) and returns one result per prompt, in order:
backends decide how to keep their device busy (length-sorted padded batches locally, bounded
concurrent requests over HTTP). Errors are raised, never returned as values.

Capabilities:

- GENERATE: chat in, text out (`generate`).
- NEXT_TOKEN_LOGPROBS: the log-probability that the assistant's reply (after an optional
  prefilled `assistant_prefix`) starts with each of a few candidate strings, e.g. the score tokens
  "0".."5" (`next_token_logprobs`). One forward pass per prompt, no decoding, no parsing.
- SCORE: per-token log-probabilities of a given continuation after a raw-text prefix
  (`score`); what perplexity and IFD need.
- TOKENIZE: count and cut text in the model's own tokens (`count_tokens`, `truncate`).
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# A chat is a list of {"role": "system" | "user" | "assistant", "content": str} messages.
Message = dict[str, str]
Chat = list[Message]


class Capability(enum.StrEnum):
    GENERATE = "generate"
    NEXT_TOKEN_LOGPROBS = "next_token_logprobs"
    SCORE = "score"
    TOKENIZE = "tokenize"


class LazyModelState:
    """Pickling for backends whose model loads lazily: the attributes named in `_transient` (loaded
    weights, tokenizers, client handles) travel as None and load again on first use in the receiving
    process; the model lock is recreated there."""

    _transient: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(dict.fromkeys((*self._transient, "_lock")))
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()


class LMError(RuntimeError):
    """A backend failed; the message names the backend and what it was doing."""


class LMTimeoutError(LMError, TimeoutError):
    """A request ran past its time limit on every attempt."""


class CapabilityError(LMError):
    """A backend was asked for something it does not declare."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters. temperature 0 means greedy (deterministic) decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class ContinuationScore:
    """Log-probabilities (natural log) of each continuation token given everything before it."""

    token_logprobs: tuple[float, ...]
    truncated: bool = False  # the prefix was cut from the left to fit the context window

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def sum_logprob(self) -> float:
        return float(sum(self.token_logprobs))

    @property
    def mean_nll(self) -> float:
        return -self.sum_logprob / self.n_tokens if self.token_logprobs else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll) if self.token_logprobs else math.nan


@dataclass(frozen=True)
class CandidateLogprobs:
    """log P(reply starts with candidate) for each candidate; -inf where the backend could not see it
    (an HTTP server returns only its top-k tokens)."""

    logprobs: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int | None = None


@runtime_checkable
class LMBackend(Protocol):
    """What judges and augmenters may call. See the module doc for the capabilities."""

    @property
    def model_id(self) -> str:
        """A stable identity of the model *and* of what changes its outputs (weights fingerprint,
        dtype); part of every judgment cache key. Computable without loading the weights."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def generate(self, prompts: Sequence[Chat], params: GenerationParams) -> list[Generation]: ...

    def next_token_logprobs(
        self, prompts: Sequence[Chat], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]: ...

    def score(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationScore]: ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """`text` cut to its first `max_tokens` tokens, and whether anything was cut."""
        ...

    def close(self) -> None: ...


def require(backend: LMBackend, *capabilities: Capability) -> None:
    """Raise CapabilityError naming what is missing; the one way judges check a backend."""
    missing = [c.value for c in capabilities if c not in backend.capabilities]
    if missing:
        have = ", ".join(sorted(c.value for c in backend.capabilities)) or "nothing"
        raise CapabilityError(f"backend {backend.model_id} lacks {', '.join(missing)} (it declares {have})")


def validate_chat(chat: Chat) -> None:
    if not chat:
        raise ValueError("empty chat")
    for message in chat:
        if message.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"bad chat role {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"chat message content must be a string, got {type(message.get('content')).__name__}")


def trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the first occurrence of any stop string (the stop string itself removed)."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
