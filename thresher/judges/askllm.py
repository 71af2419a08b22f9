"""Ask-LLM judges (Sachdeva et al., 2024): ask the model a yes/no question about the row and take
P("yes") from the probabilities of its first reply token, normalised over the yes and no tokens.

One forward pass a row and no decoding, like the expected-score judges, but the question is the
one a small model answers best: a binary verdict rather than a point on a 0-5 rubric, and the score
is a probability with the full resolution of the logits (two replies rarely tie). Prompts:
`prompts/askllm.yaml` (is the reply a helpful, correct answer to the request?) and
`prompts/askllm_edu.yaml` (is a web extract educational?). The judges share `LLMJudge`'s contract:
declared columns (`judge_askllm_score` in [0, 1], `_raw` the normalised yes/no probabilities as
JSON, `_mass` the probability on the yes/no tokens at all), the judgment cache, sampling, hardened
delimited prompts and the injection detector. Expected mode only: there is nothing to parse.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from thresher.judges.base import Judgment, LLMJudge
from thresher.judges.scoring import ParseError
from thresher.judges.views import JudgeColumns, llm_judge_columns
from thresher.llm import Capability, LMBackend, require

# Both casings: a chat model starts a reply with "Yes" as often as "yes" (each also with a leading
# space, which backends fold into the same candidate).
YES = ("Yes", "yes")
NO = ("No", "no")


@dataclass(frozen=True)
class BinaryChoice:
    p_first: float | None  # P(first option) / (P(first) + P(second)); None without any mass
    mass: float  # probability on either option's tokens


def binary_choice(logprobs: Mapping[str, float], first: Sequence[str], second: Sequence[str]) -> BinaryChoice:
    """The first option's share of the probability on two sets of answer tokens (log-space safe:
    each option's tokens are summed with log-sum-exp)."""

    def total(tokens: Sequence[str]) -> float:
        values = [logprobs.get(t, -math.inf) for t in tokens]
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return -math.inf
        top = max(values)
        return top + math.log(sum(math.exp(v - top) for v in values))

    a, b = total(first), total(second)
    if not math.isfinite(a) and not math.isfinite(b):
        return BinaryChoice(None, 0.0)
    top = max(a, b)
    # The share as a logistic of the log-odds: exact even when both probabilities underflow.
    p = 1.0 / (1.0 + math.exp(b - a)) if math.isfinite(a) and math.isfinite(b) else float(a > b)
    return BinaryChoice(p, min(1.0, math.exp(top) * (math.exp(a - top) + math.exp(b - top))))


@dataclass(frozen=True)
class AskLLMJudge(LLMJudge):
    """Ask-LLM: P(yes) that the response is a helpful, correct and complete answer to its instruction (0-1)."""

    task: ClassVar[str] = "askllm"
    stem: ClassVar[str] = "askllm"
    code_version: ClassVar[str] = "1"
    yes: ClassVar[tuple[str, ...]] = YES
    no: ClassVar[tuple[str, ...]] = NO

    def __post_init__(self) -> None:
        if self.mode != "expected":
            raise ValueError(f"{type(self).__name__} reads P(yes) in one forward pass: mode must be 'expected', "
                             f"got {self.mode!r}")
        super().__post_init__()

    @property
    def score_range(self) -> tuple[float, float]:
        return 0.0, 1.0

    @classmethod
    def dashboard_columns(cls) -> tuple[JudgeColumns, ...]:
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        return (llm_judge_columns(f"judge_{cls.stem}", expected=True, description=doc),)

    def settings(self) -> dict:
        return {**super().settings(), "yes": list(self.yes), "no": list(self.no)}

    def _judge_uncached(self, backend: LMBackend, rows: Sequence[dict[str, str]]) -> list[Judgment]:
        require(backend, Capability.NEXT_TOKEN_LOGPROBS)
        rendered = [self.render(fields, backend) for fields in rows]
        replies = backend.next_token_logprobs([chat for chat, _ in rendered], [*self.yes, *self.no],
                                              assistant_prefix=self.template.expected_prefix)
        results = []
        for (_, truncated), reply in zip(rendered, replies):
            choice = binary_choice(reply.logprobs, self.yes, self.no)
            if choice.p_first is None:
                results.append(Judgment(None, None, ParseError.NO_SCORE_TOKENS, truncated, 0.0))
                continue
            raw = json.dumps({"yes": round(choice.p_first, 4), "no": round(1 - choice.p_first, 4)},
                             separators=(",", ":"))
            results.append(Judgment(choice.p_first, raw, None, truncated, choice.mass))
        return results


@dataclass(frozen=True)
class AskLLMEduJudge(AskLLMJudge):
    """Ask-LLM for web text: P(yes) that the extract is educational, useful for teaching at school (0-1)."""

    task: ClassVar[str] = "askllm_edu"
    stem: ClassVar[str] = "askllm_edu"
    table: ClassVar[str] = "documents"

