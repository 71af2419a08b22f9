"""Settings of benchmark decontamination: which benchmark files, which of their fields, the n-gram
size, and the recipe rule that keeps contaminated rows out of every selection."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pydantic import Field, TypeAdapter, field_validator, model_validator

from thresher.config_base import InputFormat, SelectionStep, StrictModel, repeated

SCORER_NAME = "decontam"
STEP_NAME = "decontaminated"
OVERLAP_COLUMN = "decontam_overlap"
DEFAULT_N = 13


class BenchmarkSpec(StrictModel):
    """One benchmark: its files (read by the ingest readers) and the fields that make its text."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                             description="names the benchmark in decontam_benchmark; default: the first path's stem")
    paths: list[str] = Field(min_length=1, description="files, globs, directories or hf://datasets/... "
                             "(as inputs; a relative path is taken from the working directory, as scorer paths are)")
    fields: list[str] | None = Field(
        None, min_length=1, description="fields joined into the benchmark text (e.g. question, choices, answer; "
        "lists are joined word by word); default: the reader's text (an instruction set's whole rendered pair)")
    format: InputFormat = Field("auto", description="reader preset, as for inputs")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        stem = PurePath(self.paths[0].rstrip("/")).name
        for suffix in (".gz", ".zst", ".bz2", ".jsonl", ".json", ".parquet", ".csv", ".tsv", ".arrow", ".txt"):
            stem = stem.removesuffix(suffix)
        return stem or "benchmark"


_BENCHMARKS = TypeAdapter(list[str | BenchmarkSpec])


def parse_benchmarks(raw: Any) -> list[BenchmarkSpec]:
    """Benchmarks as a recipe or a scorer's parameters give them (a path, or a mapping), checked;
    names must be unique because they label the matches."""
    specs = [BenchmarkSpec(paths=[item]) if isinstance(item, str) else item
             for item in _BENCHMARKS.validate_python(raw)]
    if not specs:
        raise ValueError("decontamination needs at least one benchmark")
    labels = [spec.label for spec in specs]
    clashes = repeated(labels)
    if clashes:
        raise ValueError(f"benchmark names must be unique (give `name:`): {', '.join(clashes)}")
    return specs


class DecontaminationConfig(StrictModel):
    """A recipe's decontamination rule: curate scores `decontam@1` against the benchmarks with the
    other scorers, and every SQL selection starts with the funnel step `decontaminated`
    (`decontam_overlap <= max_overlap`), so contaminated rows never reach a selection."""

    benchmarks: list[str | BenchmarkSpec] = Field(
        min_length=1, description="benchmark files (a path) or {name, paths, fields, format}")
    n: int = Field(DEFAULT_N, ge=1, description="words per n-gram (lm-evaluation-harness uses 13)")
    max_overlap: int = Field(0, ge=0, description="rows with more matching n-grams than this are dropped")
    cache_dir: str | None = Field(
        None, description="where the n-gram indexes are cached; default $THRESHER_CACHE/decontam "
        "(else ~/.cache/thresher/decontam)")

    @model_validator(mode="after")
    def _benchmarks_valid(self) -> DecontaminationConfig:
        parse_benchmarks(self.benchmarks)
        return self

    def scorer_params(self) -> dict[str, Any]:
        benchmarks = [b if isinstance(b, str) else b.model_dump(exclude_none=True) for b in self.benchmarks]
        params: dict[str, Any] = {"benchmarks": benchmarks, "n": self.n}
        if self.cache_dir is not None:
            params["cache_dir"] = self.cache_dir
        return params

    def selection_step(self) -> SelectionStep:
        return SelectionStep(name=STEP_NAME, sql=f"{OVERLAP_COLUMN} <= {self.max_overlap}")
