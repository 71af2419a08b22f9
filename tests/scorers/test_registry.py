"""The scorer registry: versioned names, duplicate registrations, presets, laziness, parameter checks."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest

from thresher.scorers import registry
from thresher.scorers.heuristics import HeuristicsScorer
from thresher.scorers.registry import (
    UnknownScorerError,
    build_scorer,
    check_params,
    register,
    registration,
    scorer_class,
)


@dataclass(frozen=True)
class HeuristicsV2(HeuristicsScorer):
    """A stand-in for a changed heuristics scorer: a new version under the same name."""

    version: ClassVar[str] = "2"


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    monkeypatch.setattr(registry, "_REGISTRY", {name: dict(v) for name, v in registry._REGISTRY.items()})


def test_a_bare_name_is_the_newest_version_and_name_at_version_is_that_version(scratch_registry):
    register("heuristics", "2", f"{__name__}:HeuristicsV2")
    assert registration("heuristics").key == "heuristics@2"
    assert type(build_scorer("heuristics")) is HeuristicsV2 and build_scorer("heuristics").version == "2"
    assert type(build_scorer("heuristics@1", {"min_words_per_line": 4})) is HeuristicsScorer
    register("heuristics", "10", f"{__name__}:HeuristicsV2")  # versions compare as numbers, not text
    assert registration("heuristics").version == "10"
    with pytest.raises(UnknownScorerError, match="no version '3'; registered: 1, 2, 10"):
        scorer_class("heuristics@3")
    with pytest.raises(UnknownScorerError, match="unknown scorer 'heuristic'"):
        scorer_class("heuristic")


def test_duplicate_and_malformed_registrations_are_rejected(scratch_registry):
    with pytest.raises(ValueError, match="heuristics@1 is registered twice"):
        register("heuristics", "1", f"{__name__}:HeuristicsV2")
    with pytest.raises(ValueError, match="bad registration"):
        register("Heuristics", "v2", "thresher.scorers.heuristics.HeuristicsScorer")


def test_a_name_can_preset_parameters():
    judge = build_scorer("judge_edu_gen")
    assert (judge.name, judge.mode) == ("judge_edu_gen", "generate")
    assert build_scorer("judge_edu_gen", {"mode": "generate"}).name == "judge_edu_gen"
    with pytest.raises(ValueError, match="judge_edu_gen sets mode='generate'"):
        build_scorer("judge_edu_gen", {"mode": "expected"})
    assert build_scorer("judge_edu", {"mode": "generate"}).name == "judge_edu_gen"


def test_parameters_are_checked_without_building_anything(tmp_path):
    missing_model = {"model": str(tmp_path / "nowhere.arpa")}
    assert check_params("kenlm", missing_model) == []  # whether the file exists is the build's business
    assert check_params("kenlm", {"modle": "x"}) == [
        (("params", "model"), "missing: a required parameter of kenlm"),
        (("params", "modle"), "unknown parameter for kenlm (its parameters: model, sentencepiece_model, "
                              "normalise, skip_blank_lines)"),
    ]
    ((where, message),) = check_params("langid", {"max_chars": "lots"})
    assert where == ("params", "max_chars") and "valid integer" in message
    ((where, _),) = check_params("judge_alpagasus", {"mode": "vibes"})
    assert where == ("params", "mode")
    assert check_params("heuristics", {"stop_words": ["the", "a"]}) == []  # YAML lists for tuples
    assert check_params("distilled", {}) == [(("params", "head"), "missing: a required parameter of distilled")]
    ((where, message),) = check_params("nope", {"x": 1})
    assert where == ("name",) and message.startswith(
        "unknown scorer 'nope'; available: classifier, decontam, distilled, embed")


def test_naming_a_scorer_imports_only_its_own_module():
    code = ("import sys; from thresher.scorers.registry import build_scorer, available_scorers; "
            "available_scorers(); build_scorer('heuristics'); "
            "print(sorted(m for m in ('torch', 'transformers', 'kenlm', 'thresher.judges', 'thresher.perplexity', "
            "'thresher.embeddings') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
