"""The judges thresher ships (prompts in thresher/judges/prompts/<task>.yaml; names and versions in
thresher.scorers.registry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from thresher.judges.base import LLMJudge
from thresher.scorers.registry import build_scorer


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


def build_judge(name: str, **params) -> LLMJudge:
    """A judge by its registered name (`judge_alpagasus`, `judge_edu_gen`, ...) or task (`alpagasus`,
    `edu_gen`, ...): the judges are registered in thresher.scorers.registry, like every scorer."""
    judge = build_scorer(name if name.startswith("judge_") else f"judge_{name}", params)
    if not isinstance(judge, LLMJudge):
        raise ValueError(f"{name} is not a prompt judge")
    return judge
