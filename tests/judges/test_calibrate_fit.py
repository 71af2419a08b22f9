"""Fitting a judge calibration: the numeric fits on their own, a fit on real judge scores measured on
held-out labels, and `calibrate_flow --fit` writing the calibrated scores of every row of a run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.conftest import DATA
from thresher.config import IngestConfig, InputSpec, ScorerSpec
from thresher.judges.calibrate import apply_params, fit_params, uncalibrated_probability
from thresher.judges.fitting import brier, group_holdout, isotonic_fit, log_loss, logistic_fit
from thresher.storage.run_dir import RunDir

# Real scores: the packaged Qwen2.5-Coder-0.5B judge (judge_alpagasus@1.2, expected-score mode) on 40
# real Alpaca answers and 40 degraded copies (`thresher judge calibrate --degraded 40`), label 1 = real.
REAL_SET = DATA / "judge_calibration" / "alpagasus_qwen05b_degraded.jsonl"


def test_isotonic_fit_pools_violators_and_ties():
    xs, ys = isotonic_fit([1, 2, 3, 4, 4], [1, 0, 1, 0, 1])
    # (1, 2) violate and pool to 0.5; the two rows at x=4 are one point of value 0.5, which pools
    # with x=3 (1.0) to 2/3.
    assert xs == [1, 2, 3, 4]
    assert ys == pytest.approx([0.5, 0.5, 2 / 3, 2 / 3])


def test_isotonic_fit_is_monotone_and_least_squares_on_noisy_data():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 5, 300)
    y = (rng.uniform(size=300) < x / 5).astype(float)
    xs, ys = isotonic_fit(x, y)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) >= 0)
    fitted = np.interp(x, xs, ys)
    # No monotone step function fits better than PAV's: a random monotone competitor does worse.
    competitor = np.clip(x / 5, 0, 1)
    assert np.mean((fitted - y) ** 2) < np.mean((competitor - y) ** 2)


def test_logistic_fit_recovers_planted_coefficients():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(4000, 2))
    p = 1 / (1 + np.exp(-(X @ np.array([2.0, -1.0]) + 0.5)))
    y = (rng.uniform(size=4000) < p).astype(float)
    w, b = logistic_fit(X, y, l2=0.0)
    assert w == pytest.approx([2.0, -1.0], abs=0.15) and b == pytest.approx(0.5, abs=0.15)


def test_group_holdout_keeps_groups_together_and_is_seeded():
    groups = [f"d{i // 2}" for i in range(40)]  # a real answer and its degraded copy share an id
    held = group_holdout(groups, 0.25, seed=5)
    assert held.sum() == 10 and all(held[i] == held[i + 1] for i in range(0, 40, 2))
    assert np.array_equal(held, group_holdout(groups, 0.25, seed=5))
    assert not np.array_equal(held, group_holdout(groups, 0.25, seed=6))


@pytest.mark.parametrize("method", ["isotonic", "logistic"])
def test_fitted_calibration_beats_the_raw_score_on_held_out_real_labels(method):
    rows = [json.loads(line) for line in REAL_SET.read_text().splitlines()]
    s = np.array([r["score"] for r in rows])
    y = np.array([r["label"] for r in rows])
    held = group_holdout([r["doc_id"] for r in rows], 0.3, seed=0)
    params = fit_params(method, s[~held], y[~held])
    calibrated = apply_params(params, s[held].tolist())
    raw = uncalibrated_probability(_AlpaGasusScale, s[held], s[~held])

    grid = apply_params(params, np.linspace(0, 5, 101).tolist())
    assert np.all(np.diff(grid) >= 0), "a calibration must keep the judge's order"
    assert brier(calibrated, y[held]) < brier(raw, y[held])
    assert log_loss(calibrated, y[held]) < log_loss(raw, y[held])


class _AlpaGasusScale:
    score_range = (0, 5)


# -- the flow ----------------------------------------------------------------------------------------

# Mechanics on the fake backend (tests/fake_backend.py): deterministic, varied scores, no weights.
FAKE = {"backend": "fake", "model": "calibrate-fit", "max_input_tokens": 48}


@pytest.fixture(scope="module")
def judged_run(sample_data, tmp_path_factory, prefect_for_cli, fake_lm):
    from thresher.flows.ingest import plan_shards
    from thresher.flows.judges import judge_flow
    from thresher.storage.ingest import ingest_shard

    root = tmp_path_factory.mktemp("calibrate-fit")
    records = json.loads((sample_data / "alpaca_sample.json").read_text())
    (root / "alpaca.json").write_text(json.dumps(records[:40]))
    run = RunDir(root / "run")
    run.init()
    for spec, shard in plan_shards([InputSpec(paths=[str(root / "alpaca.json")], format="alpaca")]):
        ingest_shard(run, shard, spec, IngestConfig())
    judge_flow(str(run.root), [ScorerSpec(name="judge_alpagasus", params=FAKE)])
    return run


def test_calibrate_flow_fits_and_writes_every_row(judged_run):
    from thresher.flows.judges import calibrate_flow
    from thresher.storage.catalog import open_catalog

    run = judged_run
    spec = ScorerSpec(name="judge_alpagasus", params=FAKE)
    result = calibrate_flow(str(run.root), spec, "fit-check", degraded=8, seed=1, fit="logistic",
                            holdout_fraction=0.25)
    fit = result["fit"]
    assert fit.sidecar == "judge_alpagasus_calibrated_fit_check@1" and fit.n_train + fit.n_holdout == 16
    assert fit.rows_written == 40 and fit.rows_calibrated == 40

    recorded = json.loads((run.root / "judge_calibration" / "fits" / "fit-check.json").read_text())
    assert recorded["params"]["method"] == "logistic" and recorded["params"]["judge"].startswith("judge_alpagasus@")
    with open_catalog(run) as con:
        rows = con.execute("SELECT judge_alpagasus_score, judge_alpagasus_calibrated_fit_check_score "
                           "FROM instructions_scored ORDER BY judge_alpagasus_score").fetchall()
        fit_table = con.execute("SELECT method, n_holdout FROM judge_calibration_fit").fetchall()
    assert len(rows) == 40 and fit_table == [("logistic", fit.n_holdout)]
    # The JSON parameters alone reproduce the written column, and it keeps the judge's order.
    assert [r[1] for r in rows] == pytest.approx(apply_params(recorded["params"], [r[0] for r in rows]).tolist())
    calibrated = [r[1] for r in rows]
    assert calibrated == sorted(calibrated, reverse=recorded["params"]["slope"] < 0)

    # Unchanged judge scores and fit: the parts are not rewritten.
    part = next((run.root / "scores" / fit.sidecar).glob("part-*.parquet"))
    before = part.stat().st_mtime_ns
    calibrate_flow(str(run.root), spec, "fit-check", degraded=8, seed=1, fit="logistic", holdout_fraction=0.25)
    assert part.stat().st_mtime_ns == before
    assert pq.read_schema(part).metadata[b"thresher.calibration"]


def test_calibrate_fit_needs_the_judges_sidecar(judged_run, tmp_path):
    from thresher.judges.calibrate import calibrate_judge, fit_calibration
    from thresher.judges.runner import build_judge_scorer

    judge = build_judge_scorer("judge_alpagasus", {**FAKE, "prompt_version": 1}, run=judged_run)
    calibrate_judge(judged_run, judge, name="no-sidecar", degraded=4, seed=0)
    with pytest.raises(FileNotFoundError, match="thresher judge run -j judge_alpagasus"):
        fit_calibration(judged_run, judge, name="no-sidecar", method="isotonic")


def test_cli_fit_option_and_missing_15b_model(judged_run, prefect_for_cli, fake_lm, monkeypatch):
    from thresher.cli.judges import app
    from thresher.llm import packaged

    runner = CliRunner()
    bad = runner.invoke(app, ["calibrate", str(judged_run.root), "--degraded", "4", "--fit", "spline"])
    assert bad.exit_code == 2 and "isotonic, logistic or none" in bad.output
    ok = runner.invoke(app, ["calibrate", str(judged_run.root), "--degraded", "6", "--fit", "isotonic",
                             "--backend", "fake", "--model", FAKE["model"], "-o", "max_input_tokens=48"])
    assert ok.exit_code == 0, ok.output
    assert "isotonic calibration" in ok.output and "judge_alpagasus_calibrated_judge_alpagasus_degraded@1" in ok.output

    # The 1.5B judge as a machine without its 22 packages sees it: a part that cannot be found.
    name = "qwen2.5-coder-1.5b-instruct"
    absent = dataclasses.replace(packaged.SPLIT_MODELS[name], parts=(("thresher_test_absent_part", "part01.bin"),))
    monkeypatch.setitem(packaged.SPLIT_MODELS, name, absent)
    missing = runner.invoke(app, ["run", str(judged_run.root), "--model", name])
    assert missing.exit_code == 2 and "make judge-1.5b" in missing.output, missing.output
