"""What the judges write that a reader (the dashboard) shows, declared next to the writers' schemas.

Readers take column and view names from here instead of guessing them from patterns: a judge
renamed or given a new column changes one declaration, and `tests/dashboards` checks every
declaration against the judge's own `output_schema` and the calibration tables' schemas.

- A judge's sidecar, `scores/<name>@<version>/`, is the catalog view `score_<name>` (its newest
  version); `JudgeColumns` names its columns by role. `LLMJudge.dashboard_columns()` and
  `IFDScorer.dashboard_columns()` return one per name the class can write under.
- `thresher judge calibrate` writes three tables under `judge_calibration/` (catalog views
  `judge_calibration_metrics`, `_confusion`, `_rows`); `CALIBRATION` names their columns. Those
  rows are the only reference a judge's score is compared with: a judge's own columns (its
  `_truncated` flag, its `_mass`) describe the judgment, not the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from thresher.judges.calibrate import CALIBRATION_DIR
from thresher.judges.scoring import ParseError


@dataclass(frozen=True)
class JudgeColumns:
    """The columns of one judge's sidecar, by role; None where the judge writes no such column."""

    name: str  # the scorer name the sidecar is written under (`scores/<name>@<version>/`)
    score: str  # the score: null when the row was not judged or the reply could not be parsed
    raw: str | None = None  # the model's raw output, kept when parsing fails
    parse_error: str | None = None  # null, or why there is no score (a `ParseError` value)
    truncated: str | None = None  # boolean: an input field was cut to the token budget
    mass: str | None = None  # expected mode: probability the model put on score tokens at all
    injection: str | None = None  # null, or the kind of prompt-injection pattern in the judged text
    measures: tuple[str, ...] = ()  # further numeric columns worth a histogram (IFD's perplexities)
    description: str = ""

    # Rows outside a judge's `sample_fraction` carry this parse error: not judged, not a failure.
    not_sampled: str = ParseError.NOT_SAMPLED

    @property
    def histogram_columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.score, self.mass, *self.measures) if c is not None)


def llm_judge_columns(name: str, *, expected: bool = True, description: str = "") -> JudgeColumns:
    """An `LLMJudge`'s sidecar columns, named `<name>_<role>` as its `output_schema` names them
    (`_mass` is written in expected mode only; generate mode leaves it null)."""
    return JudgeColumns(
        name=name, score=f"{name}_score", raw=f"{name}_raw", parse_error=f"{name}_parse_error",
        truncated=f"{name}_truncated", mass=f"{name}_mass" if expected else None, injection=f"{name}_injection",
        description=description,
    )


IFD_COLUMNS = JudgeColumns(
    name="ifd", score="ifd_score", truncated="ifd_truncated",
    measures=("ifd_ppl_conditioned", "ifd_ppl_answer", "ifd_answer_tokens"),
    description="Instruction-Following Difficulty: PPL(answer | instruction) / PPL(answer); below 1, the "
                "instruction helps predict the answer",
)


@dataclass(frozen=True)
class CalibrationTables:
    """The views and columns of `thresher.judges.calibrate`'s tables (METRICS/CONFUSION/ROWS_SCHEMA)."""

    metrics_view: str = f"{CALIBRATION_DIR}_metrics"  # one row per calibration
    confusion_view: str = f"{CALIBRATION_DIR}_confusion"  # (label, rounded score, count) rows
    rows_view: str = f"{CALIBRATION_DIR}_rows"  # every sampled row: its label and the judge's score
    calibration: str = "calibration"  # the calibration's name: the key shared by the three views
    judge: str = "judge"  # metrics: the judge's name (JudgeColumns.name)
    judge_version: str = "judge_version"
    reference: str = "reference"  # metrics: what the labels are, in words
    label: str = "label"  # rows, confusion: the reference label
    score: str = "score"  # rows: the judge's score of the row (IFD: minus IFD, so higher = better)
    predicted: str = "predicted"  # confusion: the rounded score
    count: str = "count"  # confusion
    kind: str = "kind"  # rows: how a degraded reference row was made (null for real rows)
    metrics: tuple[str, ...] = ("n", "n_scored", "n_parse_errors", "spearman", "auc", "positive_threshold",
                                "mean_score_positive", "mean_score_negative")


CALIBRATION = CalibrationTables()
