"""The judges thresher ships (prompts in thresher/judges/prompts/<task>.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from thresher.judges.base import LLMJudge


@dataclass(frozen=True)
class AlpaGasusJudge(LLMJudge):
    """AlpaGasus: accuracy of the response to the instruction and input, 0-5 (score on the first line)."""

    task: ClassVar[str] = "alpagasus"
    stem: ClassVar[str] = "alpagasus"


@dataclass(frozen=True)
class UltraFeedbackJudge(LLMJudge):
    """UltraFeedback helpfulness rating, 1-5 ("Rating: N")."""

    task: ClassVar[str] = "ultrafeedback"
    stem: ClassVar[str] = "ultrafeedback"


@dataclass(frozen=True)
class EduJudge(LLMJudge):
    """FineWeb-Edu additive educational value of web text, 0-5, on its first 1,000 characters."""

    task: ClassVar[str] = "edu"
    stem: ClassVar[str] = "edu"
    table: ClassVar[str] = "documents"


@dataclass(frozen=True)
class DeitaComplexityJudge(LLMJudge):
    """DEITA complexity of the instruction alone, 1-6."""

    task: ClassVar[str] = "deita_complexity"
    stem: ClassVar[str] = "deita_complexity"


@dataclass(frozen=True)
class DeitaQualityJudge(LLMJudge):
    """DEITA quality of the response to its instruction, 1-6."""

    task: ClassVar[str] = "deita_quality"
    stem: ClassVar[str] = "deita_quality"


JUDGES: dict[str, type[LLMJudge]] = {
    "judge_alpagasus": AlpaGasusJudge,
    "judge_ultrafeedback": UltraFeedbackJudge,
    "judge_edu": EduJudge,
    "judge_deita_complexity": DeitaComplexityJudge,
    "judge_deita_quality": DeitaQualityJudge,
}


def build_judge(name: str, **params) -> LLMJudge:
    """A judge by registry name (`judge_alpagasus`, ...) or task (`alpagasus`, ...)."""
    key = name
    if key.endswith("_gen"):
        key = key[: -len("_gen")]
        params.setdefault("mode", "generate")
    if key not in JUDGES:
        key = f"judge_{key}"
    try:
        cls = JUDGES[key]
    except KeyError:
        raise ValueError(f"unknown judge {name!r}; known: {', '.join(sorted(JUDGES))}") from None
    return cls(**params)
