"""The judges stage's settings: which judges run by default, and what a calibration compares a
judge with. A judge's own parameters (model, mode, prompt version, sample fraction) are the fields
of its class, checked against the registry when a recipe loads."""

from __future__ import annotations

from pydantic import Field, model_validator

from thresher.config_base import ScorerSpec, StrictModel

DEFAULT_JUDGES = (ScorerSpec(name="judge_alpagasus"),)


class CalibrationConfig(StrictModel):
    """A judge's scores against a reference on a seeded sample (`thresher judge calibrate`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the judge_calibration/* rows")
    labels_path: str | None = Field(None, description="a file with doc_id and a label column")
    label_column: str = "label"
    degraded: int | None = Field(None, gt=0, description="instead of labels: N real answers vs N degraded copies")
    sample: int = Field(200, gt=0, description="labelled rows to judge at most")
    seed: int = 0
    positive_threshold: float | None = Field(None, description="graded labels >= this are positive (default: median)")

    @model_validator(mode="after")
    def _one_reference(self) -> CalibrationConfig:
        if (self.labels_path is None) == (self.degraded is None):
            raise ValueError("give exactly one reference: a label file, or degraded=N (real vs degraded answers)")
        return self
