"""Bradley-Terry composites of judge configurations (thresher.judges.preference_fit): weights learned
on the tune split follow the members that carry the label, generalise to held-out pairs, never
favour a reply position, and refuse members that were not run on the fitting pairs."""

from __future__ import annotations

import math
import random

import pytest

from thresher.judges.agreement import AgreementConfig, ConfigResult, PreferencePair, assign_splits, select
from thresher.judges.preference_fit import composite_result, composite_scores, fit_bradley_terry, transform


def _pairs(n: int) -> list[PreferencePair]:
    ids = [f"p{i:03d}" for i in range(n)]
    split = assign_splits(ids, seed=3)
    return [PreferencePair(i, (("user", f"q{i}"),), "c" * (10 + k % 7), "r" * (12 + k % 5), split[i])
            for k, i in enumerate(ids)]


def _result(name: str, scores: dict) -> ConfigResult:
    return ConfigResult(name, (), None, None, 2 * len(scores), 1.0, scores)


def test_weights_follow_the_informative_member_and_generalise():
    rng = random.Random(7)
    pairs = _pairs(200)
    # "judge" agrees with the label 85 % of the time; "noise" is a coin.
    judge = {p.id: ((1.0, 0.0) if rng.random() < 0.85 else (0.0, 1.0)) for p in pairs}
    noise = {p.id: (rng.random(), rng.random()) for p in pairs}
    members = [_result("judge", judge), _result("noise", noise)]
    configs = [AgreementConfig(name="judge", kind="pointwise", judge="j"),
               AgreementConfig(name="noise", kind="pointwise", judge="n")]
    fit = fit_bradley_terry(members, configs, select(pairs, "tune"))
    assert fit.members == ("judge", "noise") and fit.fit_pairs == len(select(pairs, "tune"))
    assert fit.weights[0] > 1.0 and abs(fit.weights[1]) < fit.weights[0] / 3
    result = composite_result("bt", fit, members, pairs, ["heldout"])
    [held] = result.sets
    truth = sum(judge[p.id][0] > judge[p.id][1] for p in select(pairs, "heldout")) / held.n
    assert held.agreement == pytest.approx(truth, abs=0.05) and held.agreement > 0.75
    assert "judge" in fit.describe()


def test_no_position_is_favoured_and_missing_scores_add_nothing():
    pairs = _pairs(40)
    scores = {p.id: (2.0, 1.0) if k % 2 else (1.0, 2.0) for k, p in enumerate(pairs)}
    scores[pairs[0].id] = (None, 1.0)
    config = AgreementConfig(name="j", kind="pointwise", judge="j")
    fit = fit_bradley_terry([_result("j", scores)], [config], pairs)
    logits = composite_scores(fit, [_result("j", scores)], [p.id for p in pairs])
    assert logits[pairs[0].id] == (0.0, 0.0)  # an unjudged pair is a tie, not a guess
    # Swapping the replies of a pair negates its logit: nothing is learned about position.
    swapped = {i: (r, c) for i, (c, r) in scores.items()}
    flipped = composite_scores(fit, [_result("j", swapped)], [p.id for p in pairs])
    assert all(flipped[i][0] == pytest.approx(-logits[i][0]) for i in logits)


def test_lengths_are_compared_in_log_characters_and_members_must_cover_the_fit_split():
    assert transform("length", 99.0) == pytest.approx(math.log(100)) and transform("pointwise", 3.0) == 3.0
    assert transform("length", None) is None and transform("pointwise", float("nan")) is None
    pairs = _pairs(20)
    partial = _result("j", {p.id: (1.0, 0.0) for p in pairs[:5]})
    with pytest.raises(ValueError, match="not run on every fitting pair"):
        fit_bradley_terry([partial], [AgreementConfig(name="j", kind="pointwise", judge="j")], pairs)
    with pytest.raises(ValueError, match="at least one member"):
        fit_bradley_terry([], [], pairs)
