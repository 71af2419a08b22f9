"""DSIR settings: what to fit (features, targets, token budget), and how to select.

A YAML file holds one `DsirConfig`; `load_dsir_config` anchors its relative paths to the file, as
recipes do. Unknown keys are errors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from thresher.config_base import InputSpec, StrictModel, load_yaml_model

TARGET_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
AUTO_TOKENS_PER_BUCKET = 100_000  # the reference's "auto" budget: 100k features per bucket


def _hash(payload: object) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=8).hexdigest()


class DsirTarget(StrictModel):
    """One target distribution: the n-gram counts of some example text.

    The text comes either from files (`inputs`, any format thresher reads: JSONL, Parquet, C4,
    Alpaca, ShareGPT, ...; quarantined rows are skipped and counted) or from `sql`, a DuckDB query
    over a run's catalog (read-only) whose `text` column (or sole column) is the text. Several
    inputs of one target are pooled into one distribution.
    """

    name: str = Field(pattern=TARGET_NAME_PATTERN,
                      description="names the weight column dsir_<name>_log_weight")
    inputs: list[InputSpec] = Field(default_factory=list, description="files of target text")
    sql: str | None = Field(None, description="a query over a run's catalog yielding a `text` column")
    catalog_run_dir: str | None = Field(None, description="the run whose catalog `sql` reads; default: this run")
    max_tokens: int | None = Field(
        None, gt=0, description="stop counting this target after this many n-gram features; None: all of it")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "raw":
            raise ValueError("'raw' names p_raw itself; choose another target name")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DsirTarget:
        if bool(self.inputs) == bool(self.sql):
            raise ValueError(f"target {self.name!r}: give exactly one of `inputs` and `sql`")
        if self.catalog_run_dir is not None and not self.sql:
            raise ValueError(f"target {self.name!r}: `catalog_run_dir` only goes with `sql`")
        return self


class DsirSelection(StrictModel):
    """Which `k` documents to keep: Gumbel top-k (importance resampling without replacement) or
    a deterministic top-k of the log importance weights, over the whole run or a candidate set."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="written to selections/<name>/")
    k: int = Field(gt=0, description="documents to select in all (split across targets by proportion)")
    method: Literal["gumbel", "top_k"] = Field(
        "gumbel", description="gumbel: sample without replacement ~ importance weights; top_k: largest weights")
    seed: int | None = Field(None, description="Gumbel noise seed; None: the run's seed (run.json)")
    proportions: dict[str, float] | None = Field(
        None, description="share of k per target; None: by each target's n-gram count (as the reference)")
    where: str | None = Field(None, description="SQL boolean expression over `where_view` restricting candidates")
    where_view: str = Field("documents_scored", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                            description="the catalog view `where` is evaluated over")
    candidates_sql: str | None = Field(None, description="SQL query over the catalog returning candidate doc_ids")
    min_example_length: int = Field(
        100, ge=0, description="skip documents with fewer word-punct tokens (the reference's rule, default 100)")
    random_baseline: bool = Field(True, description="also report a uniform random selection of the same size")
    report_max_docs: int = Field(
        20_000, gt=0, description="documents featurised per selection for the report's distributions")

    @field_validator("proportions")
    @classmethod
    def _positive(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and (not value or any(p < 0 for p in value.values()) or sum(value.values()) <= 0):
            raise ValueError("proportions must be non-negative with a positive sum")
        return value

    def content_hash(self) -> str:
        return _hash(self.model_dump(mode="json"))


class DsirConfig(StrictModel):
    """Fit p_raw over the run and p_target per target; weight every document; select."""

    targets: list[DsirTarget] = Field(min_length=1, description="target distributions; one weight column each")
    ngrams: int = Field(2, ge=1, le=8, description="unigrams up to n-grams (2: unigrams + bigrams)")
    num_buckets: int = Field(10_000, ge=1, le=1 << 24, description="hash buckets of the n-gram features")
    num_tokens_to_fit: int | Literal["auto", "all"] = Field(
        "auto", description="n-gram features of the run counted for p_raw: 'auto' = 100,000 x num_buckets")
    laplace: float = Field(0.0, ge=0, description="add-alpha smoothing of every bucket count before normalising")
    epsilon: float = Field(1e-8, ge=0, description="log(p + epsilon), as the reference (1e-8)")
    fit_batch_rows: int = Field(1024, gt=0, description="documents featurised per batch while fitting")
    selection: DsirSelection | None = Field(None, description="resample a selection by the weights; omit to "
                                            "only weight")

    @field_validator("num_tokens_to_fit")
    @classmethod
    def _positive_budget(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("num_tokens_to_fit must be positive, 'auto' or 'all'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DsirConfig:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique, got {names}")
        if self.laplace == 0 and self.epsilon == 0:
            raise ValueError("laplace or epsilon must be positive, or empty buckets give infinite log weights")
        if self.selection is not None and self.selection.proportions is not None:
            unknown = set(self.selection.proportions) - set(names)
            if unknown:
                raise ValueError(f"selection.proportions names unknown targets {sorted(unknown)}; targets: {names}")
        return self

    @property
    def raw_budget(self) -> int | None:
        """n-gram features of the run to count for p_raw; None: all."""
        if self.num_tokens_to_fit == "auto":
            return AUTO_TOKENS_PER_BUCKET * self.num_buckets
        if self.num_tokens_to_fit == "all":
            return None
        return int(self.num_tokens_to_fit)

    def fit_params(self) -> dict:
        """The settings that determine the fitted distributions, without where the data lies (a
        fit's identity adds the content fingerprints of the run and of the targets' files)."""
        return self.model_dump(mode="json", exclude={
            "selection": True, "fit_batch_rows": True,
            "targets": {"__all__": {"inputs": {"__all__": {"paths"}}, "catalog_run_dir": True}},
        })

    def fit_config_hash(self) -> str:
        return _hash(self.fit_params())


def load_dsir_config(path: str | Path) -> DsirConfig:
    """A DsirConfig from YAML; relative input paths and run dirs are relative to the file."""
    path = Path(path)
    config = load_yaml_model(path, DsirConfig)
    assert isinstance(config, DsirConfig)
    base = path.resolve().parent

    def anchored(p: str) -> str:
        return p if Path(p).is_absolute() or "://" in p else str(base / p)

    targets = []
    for target in config.targets:
        update: dict = {"inputs": [s.model_copy(update={"paths": [anchored(p) for p in s.paths]})
                                   for s in target.inputs]}
        if target.catalog_run_dir is not None:
            update["catalog_run_dir"] = anchored(target.catalog_run_dir)
        targets.append(target.model_copy(update=update))
    return config.model_copy(update={"targets": targets})
