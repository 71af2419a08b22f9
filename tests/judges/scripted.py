"""Backends that answer without a model: for testing how judges handle what models say (parse
failures, raw text) independently of any model's mood, and what they write. They implement the
LMBackend protocol."""

from __future__ import annotations

import math

from thresher.llm import CandidateLogprobs, Capability, ContinuationScore, Generation


class ScriptedBackend:
    def __init__(self, replies: list[str], model_id: str = "scripted:v1"):
        self.replies = list(replies)
        self._model_id = model_id
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def capabilities(self):
        return frozenset({Capability.GENERATE, Capability.TOKENIZE})

    def generate(self, prompts, params):
        self.calls += 1
        out = [Generation(self.replies.pop(0), "stop", 10, 3) for _ in prompts]
        return out

    def next_token_logprobs(self, prompts, candidates, *, assistant_prefix=""):  # pragma: no cover - not declared
        raise AssertionError("not declared")

    def score(self, prefixes, continuations):  # pragma: no cover - not declared
        raise AssertionError("not declared")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int):
        words = text.split(" ")
        return (" ".join(words[:max_tokens]), True) if len(words) > max_tokens else (text, False)

    def close(self) -> None:
        pass


class FixedBackend:
    """Every capability, with fixed answers and no model: for tests of what judges and IFD write
    (columns, rows, order), not of what a model thinks. Replies are `reply`; next-token
    probabilities peak on the middle candidate; a continuation costs 1 nat per word, half that after
    a non-empty prefix. Text is cut by words."""

    def __init__(self, reply: str = "3", model_id: str = "fixed:v1"):
        self.reply = reply
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def capabilities(self):
        return frozenset(Capability)

    def generate(self, prompts, params):
        return [Generation(self.reply, "stop", 10, 1) for _ in prompts]

    def next_token_logprobs(self, prompts, candidates, *, assistant_prefix=""):
        weights = [1.0 / (1 + abs(i - (len(candidates) - 1) / 2)) for i in range(len(candidates))]
        logprobs = {c: math.log(w / sum(weights)) for c, w in zip(candidates, weights)}
        return [CandidateLogprobs(logprobs, prompt_tokens=10) for _ in prompts]

    def score(self, prefixes, continuations):
        return [ContinuationScore(tuple(-0.5 if prefix else -1.0 for _ in text.split()))
                for prefix, text in zip(prefixes, continuations)]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int):
        words = text.split(" ")
        return (" ".join(words[:max_tokens]), True) if len(words) > max_tokens else (text, False)

    def close(self) -> None:
        pass


class CountingBackend:
    """Delegates to a real backend and counts the calls and rows that reach it."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self.rows = 0

    @property
    def model_id(self):
        return self.inner.model_id

    @property
    def capabilities(self):
        return self.inner.capabilities

    def _count(self, n):
        self.calls += 1
        self.rows += n

    def generate(self, prompts, params):
        self._count(len(prompts))
        return self.inner.generate(prompts, params)

    def next_token_logprobs(self, prompts, candidates, *, assistant_prefix=""):
        self._count(len(prompts))
        return self.inner.next_token_logprobs(prompts, candidates, assistant_prefix=assistant_prefix)

    def score(self, prefixes, continuations):
        self._count(len(prefixes))
        return self.inner.score(prefixes, continuations)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def truncate(self, text, max_tokens):
        return self.inner.truncate(text, max_tokens)

    def close(self):
        pass


__all__ = ["CandidateLogprobs", "CountingBackend", "FixedBackend", "ScriptedBackend"]
