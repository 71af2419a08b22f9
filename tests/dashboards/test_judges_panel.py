"""The judge panel on the demo's real Qwen judge sidecar, and its calibration against a real reference
(`thresher judge calibrate`'s tables on the staged copy), checked against SQL over the same tables."""

from __future__ import annotations

import math

import pytest

from tests.dashboards.conftest import CALIBRATION, CALIBRATION_PAIRS
from thresher.dashboards import data as d

VIEW = "score_judge_alpagasus"


@pytest.fixture(scope="module")
def demo(demo_run):
    with d.read_catalog(demo_run) as cat:
        yield cat


@pytest.fixture(scope="module")
def staged(staged_run):
    with d.read_catalog(staged_run) as cat:
        yield cat


def test_the_judges_are_the_registered_declarations_present_in_the_run(demo):
    assert d.judge_views(demo) == [VIEW]  # the demo judges with AlpaGasus only (the distilled head is no judge)
    (sidecar,) = d.judge_sidecars(demo)
    assert sidecar.columns.name == "judge_alpagasus" and sidecar.key.startswith("judge_alpagasus@")
    names = [c.name for c in d.judge_declarations()]
    assert len(names) == len(set(names)) and {"judge_alpagasus", "judge_alpagasus_gen", "ifd"} <= set(names)
    with pytest.raises(d.NotFound):
        d.judge_view(demo, "score_heuristics")


def test_judge_counts_are_counts_over_the_sidecar(demo):
    j = d.judge_view(demo, VIEW)
    c = j.columns
    rows, not_sampled, scored = demo.rows(
        f"SELECT count(*), count(*) FILTER (WHERE {c.parse_error} = 'not_sampled'), count({c.score}) FROM {VIEW}")[0]
    assert (j.rows, j.not_sampled, j.scored, j.judged) == (rows, not_sampled, scored, rows - not_sampled)
    assert j.scored > 0
    assert j.truncated == demo.scalar(f"SELECT count(*) FILTER (WHERE {c.truncated}) FROM {VIEW} "
                                      f"WHERE {c.parse_error} IS DISTINCT FROM 'not_sampled'")
    assert j.parse_errors == dict(demo.rows(
        f"SELECT {c.parse_error}, count(*) FROM {VIEW} WHERE {c.parse_error} <> 'not_sampled' GROUP BY 1"))
    assert j.injections == dict(demo.rows(f"SELECT {c.injection}, count(*) FROM {VIEW} "
                                          f"WHERE {c.injection} IS NOT NULL GROUP BY 1"))
    unparsed = demo.scalar(f"SELECT count(*) FROM {VIEW} WHERE {c.score} IS NULL "
                           f"AND {c.parse_error} IS DISTINCT FROM 'not_sampled'")
    assert len(j.unparsed) == min(unparsed, 5)


def test_judge_histograms_are_the_declared_score_and_mass_binned_like_sql(demo):
    j = d.judge_view(demo, VIEW)
    # The score and the probability mass on score tokens; never the boolean `_truncated` flag.
    assert j.score_columns == ["judge_alpagasus_score", "judge_alpagasus_mass"]
    for hist in j.histograms:
        values = [v for (v,) in demo.rows(f"SELECT {hist.column}::DOUBLE FROM {VIEW} WHERE {hist.column} IS NOT NULL")]
        assert hist.rows == j.rows and hist.values == len(values)
        assert sum(hist.counts) + hist.below + hist.above == len(values)
        expected = [0] * len(hist.counts)
        for v in values:  # under 200 values: the histogram spans them all, nothing below or above
            expected[min(max(math.floor((v - hist.lo) / hist.width), 0), len(expected) - 1)] += 1
        assert hist.counts == expected, hist.column
        assert hist.min == pytest.approx(min(values)) and hist.max == pytest.approx(max(values))


def test_a_judge_without_calibration_shows_none(demo):
    # No `thresher judge calibrate` in the demo: no reference, so no calibration (not score vs a flag).
    assert not demo.has("judge_calibration_rows")
    assert d.judge_view(demo, VIEW).calibrations == []


def test_calibration_pairs_the_score_with_the_reference_labels(staged):
    j = d.judge_view(staged, VIEW)
    (cal,) = j.calibrations
    assert cal.name == CALIBRATION and "degraded" in cal.reference
    where = "WHERE calibration = ?"
    n, n_scored, spearman, auc = staged.rows(
        f"SELECT n, n_scored, spearman, auc FROM judge_calibration_metrics {where}", [CALIBRATION])[0]
    assert n == 2 * CALIBRATION_PAIRS and cal.metrics["n"] == n and cal.metrics["auc"] == auc
    plot = cal.plot
    assert (plot.x, plot.y) == ("reference label", "judge_alpagasus score")
    assert plot.pairs == n_scored == staged.scalar(
        f"SELECT count(*) FROM judge_calibration_rows {where} AND score IS NOT NULL", [CALIBRATION])
    # Labels are 1 (real answer) and 0 (degraded copy): one bin each, the judge's mean score in it.
    by_label = {label: (count, mean) for label, count, mean in staged.rows(
        f"SELECT label, count(score), avg(score) FROM judge_calibration_rows {where} GROUP BY label", [CALIBRATION])}
    assert set(by_label) == {0.0, 1.0}
    assert plot.x_centers == [0.0, 1.0] and plot.counts == [by_label[0.0][0], by_label[1.0][0]]
    assert plot.y_mean == pytest.approx([by_label[0.0][1], by_label[1.0][1]])
    assert sum(map(sum, plot.heat)) == plot.pairs
    # The panel's rank correlation (SQL, average ranks for ties) is the stage's own (numpy).
    if spearman is not None and not math.isnan(spearman):
        assert plot.spearman == pytest.approx(spearman)
    assert sum(count for _, _, count in cal.confusion) == n_scored
