"""Prompt-injection patterns in judged text: the judges' `_injection` column.

`thresher.judges.injection` measures how attacks move a judge's scores and how many of them this
detector flags."""

from __future__ import annotations

import re

from thresher.judges.templates import CONTROL_TOKENS

# What injected text looks like, independent of the model (the `_injection` column). A 0.5B judge
# cannot be trusted to ignore instructions in its input however the prompt is worded, so judged
# text is also scanned, and the flag travels with the score for selection recipes to use.
_DETECTORS: tuple[tuple[str, re.Pattern], ...] = (
    ("control_token", CONTROL_TOKENS),
    ("forged_marker", re.compile(r"<<<\s*(?:END\s+)?(?:INSTRUCTION|INPUT|RESPONSE|EXTRACT)\b", re.IGNORECASE)),
    ("override", re.compile(
        r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:instructions?|prompt|rules|rubric|guidelines)\b",
        re.IGNORECASE)),
    ("role_header", re.compile(
        r"^[ \t]*(?:#{1,4}[ \t]*(?:system|assistant|user|instruction|response)[ \t]*:?|system[ \t]*:)",
        re.IGNORECASE | re.MULTILINE)),
    ("score_claim", re.compile(
        r"\b(?:educational score|score|rating|quality|complexity|grade)[ \t]*[:=][ \t]*\**[ \t]*\d", re.IGNORECASE)),
    ("grader_address", re.compile(
        r"\b(?:grader|evaluator|annotator|judge|rater)s?\b[^.\n]{0,60}\b(?:must|should|will|shall)\b[^.\n]{0,40}"
        r"\b(?:score|rate|give|award|grade)", re.IGNORECASE)),
)


def detect_injection(fields: dict[str, str]) -> str | None:
    """The first kind of injection pattern found in any field, or None."""
    for text in fields.values():
        if not text:
            continue
        for reason, pattern in _DETECTORS:
            if pattern.search(text):
                return reason
    return None
