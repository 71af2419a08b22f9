"""Scorers by name, so recipes and the CLI can name them without importing classes."""

from __future__ import annotations

import importlib
from typing import Any

from thresher.scorers.base import Scorer

# name -> "module:Class"; imported lazily so that naming a scorer never loads another's model.
_SCORERS: dict[str, str] = {
    "heuristics": "thresher.scorers.heuristics:HeuristicsScorer",
    "langid": "thresher.scorers.langid:LanguageIdScorer",
    "kenlm": "thresher.perplexity.kenlm_scorer:KenLMPerplexityScorer",
    "lm_perplexity": "thresher.perplexity.lm_scorer:CausalLMPerplexityScorer",
    # SLM judges and IFD read more than `text` (their `input_columns`) from the table they name.
    "judge_alpagasus": "thresher.judges.judges:AlpaGasusJudge",
    "judge_ultrafeedback": "thresher.judges.judges:UltraFeedbackJudge",
    "judge_edu": "thresher.judges.judges:EduJudge",
    "judge_deita_complexity": "thresher.judges.judges:DeitaComplexityJudge",
    "judge_deita_quality": "thresher.judges.judges:DeitaQualityJudge",
    "ifd": "thresher.judges.ifd:IFDScorer",
    # Sentence embeddings and heads distilled from a judge (params: {"head": "<run>/models/distilled_<name>"}).
    "embed": "thresher.embeddings.scorer:EmbeddingScorer",
    "distilled": "thresher.embeddings.distill:DistilledScorer",
}


def available_scorers() -> list[str]:
    return sorted(_SCORERS)


def scorer_class(name: str) -> type:
    try:
        target = _SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(available_scorers())}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_scorer(name: str, params: dict[str, Any] | None = None) -> Scorer:
    cls = scorer_class(name)
    try:
        return cls(**(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters for scorer {name!r}: {exc}") from None
