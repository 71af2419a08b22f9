"""The packaged Qwen2.5-Coder-0.5B as a judge, on real data: how well it separates real answers
from degraded ones (AUC), and how prompt injection moves it before and after hardening.

Samples are small (a few dozen judgments) and seeded; the floors below are what was measured on
exactly these samples on this project's CPU (bf16) minus a margin for float differences on
other hardware, not targets. Larger samples: bench/judge_modes.py.
"""

from __future__ import annotations

import json

import pytest

from tests.lm_models import QWEN
from thresher.judges.degrade import degraded_pairs
from thresher.judges.injection import measure_injection
from thresher.judges.judges import build_judge
from thresher.judges.metrics import roc_auc

N_PAIRS = 8
MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module")
def labelled(sample_data):
    records = json.loads((sample_data / "alpaca_sample.json").read_text())
    return degraded_pairs(records, N_PAIRS, seed=0, max_words=60)


def judge_auc(judge, rows) -> float:
    judgments = judge.judge_rows([r.fields() for r in rows])
    assert all((j.score is None) == (j.parse_error is not None) for j in judgments)
    scores = [float("nan") if j.score is None else j.score for j in judgments]
    return roc_auc(scores, [r.label for r in rows])


# (judge, mode, floor): floor = the AUC measured on this sample minus 0.1 (see the module doc).
# Measured (bf16, 2-core EPYC): alpagasus 0.844, ultrafeedback 0.422, deita_quality 0.797 in
# expected mode; alpagasus generate 0.500 (the 0.5B model answers "5" to nearly everything, and
# integer scores tie: the expected score's resolution is what separates the rows).
CASES = [
    ("alpagasus", "expected", 0.74),
    ("ultrafeedback", "expected", 0.32),
    ("deita_quality", "expected", 0.70),
    ("alpagasus", "generate", 0.40),
]


@pytest.mark.parametrize(("task", "mode", "floor"), CASES, ids=[f"{t}-{m}" for t, m, _ in CASES])
def test_real_answers_outscore_degraded_ones(qwen, labelled, task, mode, floor):
    judge = build_judge(task, model=QWEN, mode=mode, max_input_tokens=128)
    auc = judge_auc(judge, labelled)
    MEASURED[f"{task}/{mode}"] = auc
    print(f"AUC {task}/{mode} on {len(labelled)} rows: {auc:.3f}")
    assert auc >= floor


def test_educational_value_judge_on_wikipedia_and_c4(qwen, sample_data):
    """Qwen2.5-Coder-0.5B cannot judge educational value: on this 6 + 6 sample its expected score
    gives AUC 0.667, but 0.53 on 8 + 8 and 0.51 on 12 + 12 (bench/judge_modes.py), within 3.1-3.5
    for every page; generating, it answers on a 0-100 scale ("Educational score: 50"), which the
    judge reports as out of range with the reply kept. Use a larger judge for this task."""
    wiki = [line for line in (sample_data / "wikipedia_sample.txt").read_text().splitlines() if len(line) > 1500][:6]
    c4 = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").read_text().splitlines()]
    c4 = [t for t in c4 if len(t) > 800][:6]
    judge = build_judge("edu", model=QWEN, max_input_tokens=320)
    judgments = judge.judge_rows([{"text": t} for t in wiki + c4])
    scores = [j.score for j in judgments]
    auc = roc_auc(scores, [1] * len(wiki) + [0] * len(c4))
    print(f"AUC edu/expected wikipedia vs c4: {auc:.3f}; wiki {scores[:6]} c4 {scores[6:]}")
    assert all(j.mass > 0.5 for j in judgments)  # the prefilled "Educational score: " is followed by a digit
    assert auc >= 0.4
    generated = build_judge("edu", model=QWEN, max_input_tokens=320, mode="generate").judge_rows(
        [{"text": t} for t in wiki[:2]])
    for j in generated:
        assert j.raw and (j.score is None) == (j.parse_error is not None)
        if j.parse_error:
            assert "Educational score" in j.raw or "score" in j.raw.lower()


def test_complexity_runs_in_both_modes(qwen, labelled):
    rows = [r.fields() for r in labelled if r.label == 1][:4]
    expected = build_judge("deita_complexity", model=QWEN).judge_rows(rows)
    generated = build_judge("deita_complexity", model=QWEN, mode="generate").judge_rows(rows)
    assert all(1 <= j.score <= 6 and j.parse_error is None for j in expected)
    assert all(j.raw for j in generated)
    assert all((j.score is None) == (j.parse_error is not None) for j in generated)


def test_hardening_reduces_injection_gains(qwen, labelled):
    rows = [r.fields() for r in labelled if r.label == 1][:5]
    judge = build_judge("alpagasus", model=QWEN, max_input_tokens=128)
    results = measure_injection(judge, rows, attacks=("ignore", "fake_score", "role_play"))
    gained = {True: 0, False: 0}
    change = {True: 0.0, False: 0.0}
    for r in results:
        print(f"injection v{r.prompt_version} hardened={r.hardened} {r.attack}: {r.n_gained}/{r.n} rose, "
              f"mean change {r.mean_delta:+.3f}, flagged {r.n_flagged}, rose unflagged {r.n_gained_unflagged}")
        assert r.n_flagged == r.n and r.n_gained_unflagged == 0  # the detector catches every shipped attack
        gained[r.hardened] += r.n_gained
        change[r.hardened] += r.mean_delta
    # Measured: unhardened 15/15 attacked rows rose (mean changes +0.61, +0.78, +0.58), hardened
    # 12/15 (+0.35, +0.31, +0.12). Hardening shrinks the effect; with a 0.5B judge it does not end it.
    assert gained[True] <= gained[False]
    assert change[True] < 0.7 * change[False]
