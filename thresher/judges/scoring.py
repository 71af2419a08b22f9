"""Turning model output into a score: parsing generated replies, and expected scores over the
probabilities of the score tokens."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from thresher.judges.templates import ParseRule

_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)")


class ParseError:
    """Reasons a judgment has no score (the `judge_<name>_parse_error` column)."""

    NO_SCORE = "no_score"  # the reply holds no score in the expected format
    OUT_OF_RANGE = "out_of_range"  # a number outside the scale
    EMPTY_REPLY = "empty_reply"
    NO_SCORE_TOKENS = "no_score_tokens"  # expected mode: no probability on any score token
    MISSING_INPUT = "missing_input"  # a required field is null
    NOT_SAMPLED = "not_sampled"  # outside the judge's `sample_fraction` (not an error: not judged)


@dataclass(frozen=True)
class Parsed:
    score: float | None
    error: str | None


def parse_reply(text: str, rule: ParseRule, scale: Sequence[int]) -> Parsed:
    """The score in a generated reply, or the reason there is none."""
    if not text or not text.strip():
        return Parsed(None, ParseError.EMPTY_REPLY)
    lo, hi = min(scale), max(scale)
    if rule.kind == "first_line_number":
        first_line = next((line for line in text.strip().splitlines() if line.strip()), "")
        match = _NUMBER.search(first_line)
        candidates = [match.group(1)] if match else []
    elif rule.kind == "regex":
        found = re.findall(rule.pattern or "", text, flags=re.IGNORECASE)
        candidates = found[-1:] if rule.which == "last" else found[:1]
    else:
        raise ValueError(f"unknown parse rule {rule.kind!r}")
    if not candidates:
        return Parsed(None, ParseError.NO_SCORE)
    value = float(candidates[0])
    if not lo <= value <= hi:
        return Parsed(None, ParseError.OUT_OF_RANGE)
    return Parsed(value, None)


@dataclass(frozen=True)
class ExpectedScore:
    score: float | None
    mass: float  # total probability on the score tokens (a fluency/validity diagnostic)
    probs: dict[str, float]  # renormalised over the score tokens

    @property
    def raw(self) -> str:
        return json.dumps({k: round(v, 4) for k, v in self.probs.items()}, separators=(",", ":"))


def expected_score(logprobs: Mapping[str, float]) -> ExpectedScore:
    """E[score] = sum(s * p(s)) / sum(p(s)) over the score tokens (DEITA-style)."""
    finite = {k: v for k, v in logprobs.items() if v is not None and math.isfinite(v)}
    if not finite:
        return ExpectedScore(None, 0.0, {})
    top = max(finite.values())
    weights = {k: math.exp(v - top) for k, v in finite.items()}
    total = sum(weights.values())
    probs = {k: weights.get(k, 0.0) / total for k in logprobs}
    mass = math.exp(top) * total
    score = sum(float(k) * p for k, p in probs.items())
    return ExpectedScore(score, min(mass, 1.0), probs)
