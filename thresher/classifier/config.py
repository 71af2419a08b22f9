"""Settings of the fastText quality classifier (see thresher.classifier.train).

Two ways to get labels:

- `source: judge` (distillation, the FineWeb-Edu recipe with a fastText student): rows of
  `<table>_scored` where `target` (a judge's score column such as `judge_edu_score`, or any SQL
  expression) is present; a row is positive when target >= `positive_threshold` (default: the
  median of the training rows).
- `source: reference` (the DCLM recipe): positives are the rows of `reference` input files (any
  format `thresher ingest` reads) and/or the run's rows matching `positive_where`; negatives are a
  seeded random sample of the run's pool (`negative_where` narrows it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thresher.config_base import InputSpec, StrictModel, load_yaml_model, repeated

DataTable = Literal["documents", "instructions"]
CLASSIFIER_NAME = r"^[a-z][a-z0-9_]{0,39}$"


class FastTextSettings(StrictModel):
    """fastText (floret, mode fasttext) supervised training settings. One thread: fastText's
    Hogwild updates make multi-threaded training depend on scheduling, so one thread is what makes
    a seed reproduce a model byte for byte."""

    dim: int = Field(64, ge=2, le=1024, description="word vector dimension")
    epoch: int = Field(10, ge=1, le=200, description="passes over the training rows")
    lr: float = Field(0.5, gt=0.0, le=5.0, description="learning rate (0.5 and 10 epochs beat fastText's 0.1 "
                      "and 5 on labelled samples of a few thousand rows)")
    word_ngrams: int = Field(2, ge=1, le=5, description="word n-grams (DCLM: 2)")
    min_count: int = Field(2, ge=1, description="words seen fewer times are dropped from the vocabulary")
    bucket: int = Field(200_000, ge=1_000, description="hash buckets of the word n-grams (model size ~ bucket x dim)")
    thread: int = Field(1, ge=1, description="training threads; 1 keeps training deterministic for a seed")


class ClassifierConfig(StrictModel):
    """Train a fastText classifier of "high quality" rows, score every row with P(positive), and add
    a run-wide percentile of that score (Nemotron-CC style bins) for selection SQL."""

    name: str = Field(pattern=CLASSIFIER_NAME, description="columns classifier_<name>_score and classifier_<name>_pct")
    table: DataTable = Field("documents", description="the data table trained on and scored")
    source: Literal["judge", "reference"] = Field(
        "judge", description="judge: labels from `target` over <table>_scored (distillation); reference: positives "
        "from `reference` files and/or `positive_where`, negatives from the run's pool (DCLM)")
    target: str | None = Field(None, description="source judge: the judge's score column or a SQL expression over "
                               "<table>_scored, e.g. judge_edu_score")
    positive_threshold: float | None = Field(
        None, description="source judge: positive when target >= this; default: the training rows' median")
    where: str | None = Field(None, description="SQL predicate over <table>_scored restricting every sampled run row")
    reference: list[InputSpec] = Field(
        default_factory=list, description="source reference: positive files (any ingest format; their `text`)")
    positive_where: str | None = Field(
        None, description="source reference: SQL predicate over <table>_scored marking positive run rows")
    negative_where: str | None = Field(
        None, description="source reference: SQL predicate restricting the negative pool (default: every row not "
        "positive)")
    sample: int = Field(20_000, ge=20, description="labelled rows at most (train + held out); reference: half "
                        "positives, half negatives at most")
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the sample held out for the report")
    seed: int | None = Field(None, description="sampling, split and fastText seed; None: the run's seed")
    fasttext: FastTextSettings = Field(FastTextSettings(), description="fastText hyper-parameters")
    max_chars: int = Field(10_000, ge=100, description="characters of each text the classifier reads (train and score)")
    lowercase: bool = Field(True, description="lowercase text before training and scoring (DCLM's preprocessing); "
                            "newlines always become spaces, and fastText splits words on whitespace runs, so "
                            "whitespace is collapsed in effect")
    score_all: bool = Field(True, description="score every row of `table` and write the percentile sidecar")

    @model_validator(mode="after")
    def _source_fields(self) -> ClassifierConfig:
        if self.source == "judge":
            if not self.target:
                raise ValueError("source judge needs `target` (e.g. judge_edu_score)")
            if self.reference or self.positive_where or self.negative_where:
                raise ValueError("reference, positive_where and negative_where belong to source: reference")
        else:
            if not self.reference and not self.positive_where:
                raise ValueError("source reference needs `reference` files or a `positive_where` predicate")
            if self.target is not None or self.positive_threshold is not None:
                raise ValueError("target and positive_threshold belong to source: judge")
        return self

    @property
    def score_column(self) -> str:
        return f"classifier_{self.name}_score"

    @property
    def percentile_column(self) -> str:
        return f"classifier_{self.name}_pct"


def unique_names(configs: list[ClassifierConfig]) -> list[ClassifierConfig]:
    names = [c.name for c in configs]
    clashes = repeated(names)
    if clashes:
        raise ValueError(f"classifier names must be unique (each names its columns): {', '.join(clashes)}")
    return configs



class ClassifiersConfig(StrictModel):
    """A file of classifiers for `thresher classifier run` (the recipe's `classifiers:` block alone)."""

    classifiers: list[ClassifierConfig] = Field(min_length=1, description="the classifiers, trained in order")

    @model_validator(mode="after")
    def _unique(self) -> ClassifiersConfig:
        unique_names(list(self.classifiers))
        return self


def load_classifiers(path) -> ClassifiersConfig:
    config = load_yaml_model(path, ClassifiersConfig)
    assert isinstance(config, ClassifiersConfig)
    return config
