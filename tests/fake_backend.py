"""A deterministic language model behind thresher's whole backend protocol (`thresher.llm.protocol`),
for tests of caching, resume, retries and flow mechanics: no weights, no torch, microseconds a call.

Every capability is there (GENERATE, NEXT_TOKEN_LOGPROBS, SCORE, TOKENIZE; fewer with
`capabilities=`), and every output is a pure function of the input (and of `seed`):

- tokens are whitespace-separated words with their leading whitespace (`\\s*\\S+`), so `truncate`
  returns a prefix of the text and `count_tokens` counts words;
- `next_token_logprobs` puts a softmax over the candidates, peaked at a position set by a "quality"
  in [0, 1] that mixes a hash of the prompt with its length, so judges get varied, reproducible
  scores and a judge's mass is below 1 (`mass`);
- `score` gives each continuation word a log-probability set by a hash of the word, much higher when
  the word already occurred in the prefix or earlier in the continuation: a related prefix lowers the
  perplexity of its answer (IFD < 1 for an instruction's own answer, higher for another's);
- `generate` writes `reply_format` filled with `{score}` (1-5, from the same quality) and `{text}`
  (words drawn, seeded by the prompt, from the prompt's own words and a small vocabulary), cut at
  `max_new_tokens` words and at the stop strings.

Counters (`calls`, `rows`) say what reached the "model"; `fail_first` makes the first calls raise
LMError. Tests select it with the `fake_lm` fixture (tests/conftest.py), which registers it under a
`BackendSpec`, so judges, IFD and augmenters build it through `thresher.llm.get_backend` as usual.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence

from thresher.llm import (
    CandidateLogprobs,
    Capability,
    CapabilityError,
    ContinuationScore,
    Generation,
    GenerationParams,
    LMError,
)
from thresher.llm.protocol import LazyModelState, trim_at_stop, validate_chat

_TOKEN = re.compile(r"\s*\S+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
VOCABULARY = ("carefully", "explain", "describe", "example", "detail", "three", "reasons", "compare", "contrast",
              "summary", "history", "science", "simple", "steps", "table", "list", "context", "analysis",
              "evidence", "result", "method", "question", "answer", "data", "model", "river", "energy", "city")


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of `parts`."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def render(chat: Sequence[dict], assistant_prefix: str = "") -> str:
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in chat) + "<|assistant|>\n" + assistant_prefix


class FakeBackend(LazyModelState):
    """See the module doc. Keyword options are those a `BackendSpec` passes (JSON values)."""

    def __init__(
        self,
        model: str = "fake",
        *,
        capabilities: Sequence[str] | None = None,
        max_context: int = 4096,
        reply_format: str = "{score}\n{text}",
        seed: int = 0,
        fail_first: int = 0,
        **ignored: object,
    ):
        # `ignored`: options meant for a real backend (dtype, max_batch_size, ...) change nothing here.
        self.model_ref = model
        self._capabilities = frozenset(Capability) if capabilities is None else frozenset(
            Capability(c) for c in capabilities)
        self.max_context = max_context
        self.reply_format = reply_format
        self.seed = seed
        self.fail_first = fail_first
        self.calls: Counter = Counter()  # backend calls by method (count_tokens/truncate not counted)
        self.rows: Counter = Counter()  # prompts / continuations by method
        self._lock = threading.RLock()  # LazyModelState pickles without it

    def __repr__(self) -> str:
        return f"FakeBackend({self.model_ref!r})"

    # -- identity --------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        settings = f"{sorted(c.value for c in self._capabilities)}|{self.max_context}|{self.reply_format}|{self.seed}"
        return f"fake:{self.model_ref}:{hashlib.sha256(settings.encode()).hexdigest()[:12]}"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def _enter(self, method: str, capability: Capability, n: int) -> None:
        if capability not in self._capabilities:
            raise CapabilityError(f"backend {self.model_id} lacks {capability.value}")
        with self._lock:
            self.calls[method] += 1
            self.rows[method] += n
            failing = self.total_calls <= self.fail_first
        if failing:
            raise LMError(f"fake backend {self.model_ref}: injected failure of call {self.total_calls}")

    def quality(self, text: str) -> float:
        """The prompt's 'quality' in [0, 1]: mostly a hash, partly its length (longer scores higher)."""
        return 0.7 * _unit(self.seed, "quality", text) + 0.3 * min(1.0, len(tokens(text)) / 300)

    # -- TOKENIZE --------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(tokens(text))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        pieces = list(_TOKEN.finditer(text))
        if len(pieces) <= max_tokens:
            return text, False
        return (text[: pieces[max_tokens - 1].end()] if max_tokens > 0 else ""), True

    # -- NEXT_TOKEN_LOGPROBS ---------------------------------------------------------------------

    def next_token_logprobs(
        self, prompts: Sequence[list[dict]], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]:
        self._enter("next_token_logprobs", Capability.NEXT_TOKEN_LOGPROBS, len(prompts))
        if len(set(candidates)) != len(candidates) or any(not c or c != c.strip() for c in candidates):
            raise LMError(f"candidates {list(candidates)!r} must be distinct single tokens")
        out = []
        for chat in prompts:
            validate_chat(chat)
            text = render(chat, assistant_prefix)
            n = len(tokens(text))
            if n > self.max_context:
                raise LMError(f"1 prompt(s) exceed the context of {self.max_context} tokens; truncate inputs")
            peak = self.quality(text) * (len(candidates) - 1)
            logits = [-1.5 * abs(i - peak) + 0.3 * _unit(self.seed, "noise", text, c) for i, c in enumerate(candidates)]
            top = max(logits)
            total = sum(math.exp(v - top) for v in logits)
            mass = 0.6 + 0.39 * _unit(self.seed, "mass", text)  # the rest goes to other tokens
            out.append(CandidateLogprobs({c: math.log(mass) + v - top - math.log(total)
                                          for c, v in zip(candidates, logits)}, prompt_tokens=n))
        return out

    # -- SCORE -----------------------------------------------------------------------------------

    def score(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationScore]:
        if len(prefixes) != len(continuations):
            raise ValueError(f"{len(prefixes)} prefixes for {len(continuations)} continuations")
        self._enter("score", Capability.SCORE, len(prefixes))
        out = []
        for prefix, cont in zip(prefixes, continuations):
            context, target = tokens(prefix), tokens(cont)
            truncated = False
            if len(target) > self.max_context - 1:
                target, truncated = target[: self.max_context - 1], True
            if len(context) + len(target) > self.max_context:
                context, truncated = context[len(context) + len(target) - self.max_context:], True
            seen = {t.strip().lower() for t in context}
            logprobs = []
            for token in target:
                word = token.strip().lower()
                u = _unit(self.seed, "token", word)
                logprobs.append(-(0.2 + 0.8 * u) if word in seen else -(2.0 + 4.0 * u))
                seen.add(word)
            out.append(ContinuationScore(tuple(logprobs), truncated))
        return out

    # -- GENERATE --------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[list[dict]], params: GenerationParams) -> list[Generation]:
        self._enter("generate", Capability.GENERATE, len(prompts))
        out = []
        for chat in prompts:
            validate_chat(chat)
            text = render(chat)
            n = len(tokens(text))
            if n + params.max_new_tokens > self.max_context:
                raise LMError(f"1 prompt(s) leave no room for {params.max_new_tokens} new tokens "
                              f"in the context of {self.max_context}; truncate inputs")
            seed = (self.seed, params.seed, params.temperature, text) if params.temperature > 0 else (self.seed, text)
            rng = random.Random(_unit(*seed))
            own = _WORD.findall(chat[-1]["content"]) or list(VOCABULARY)
            words = [rng.choice(own) if rng.random() < 0.6 else rng.choice(VOCABULARY)
                     for _ in range(rng.randint(6, 24))]
            words[0] = words[0].capitalize()
            score = 1 + round(4 * self.quality(text))
            reply = self.reply_format.format(score=score, text=" ".join(words) + ".")
            cut, stopped = trim_at_stop(reply, params.stop)
            kept, was_cut = self.truncate(cut, params.max_new_tokens)
            finish = "length" if was_cut else "stop"
            out.append(Generation(kept, finish, n, self.count_tokens(kept)))
        return out

    def close(self) -> None:
        pass


__all__ = ["FakeBackend", "render", "tokens"]
