"""The base of every thresher config: strict pydantic models, YAML loading with errors that name
the file and the key, and the input/ingest settings every stage shares. Stage configs (dedup,
DSIR, …) import from here, and `thresher.config` assembles them into recipes."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

InputFormat = Literal[
    "auto", "c4", "fineweb", "refinedweb", "jsonl", "parquet", "csv", "tsv", "arrow", "text", "alpaca", "sharegpt",
    "warc", "wet",
]


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted (for "must be unique" errors)."""
    return sorted({name for name in names if names.count(name) > 1})


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the bad key."""


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the recipe"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load_yaml_model(path: str | Path, model: type[StrictModel]) -> StrictModel:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None


class InputSpec(StrictModel):
    """One input source: files, globs or directories of one format."""

    paths: list[str] = Field(
        min_length=1, description="files, glob patterns, directories or Hugging Face datasets "
        "(hf://datasets/<owner>/<name>[@<revision>][/<path or glob>], from the local HF cache), or the same in object "
        "storage (s3://bucket/prefix/**, any fsspec URL; credentials from the environment); one may be a string")
    format: InputFormat = Field(
        "auto", description="reader preset; 'auto' decides from the file name and columns"
    )
    text_field: str | None = Field(None, description="text column (jsonl/parquet); preset default")
    text_mode: Literal["file", "lines"] = Field(
        "file", description="plain-text files: one document per file, or one per non-blank line"
    )
    url_field: str | None = Field(None, description="URL column; preset default")
    timestamp_field: str | None = Field(None, description="timestamp column; preset default")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list) and any(isinstance(p, str) and "://" in p and "@" in p for p in value):
            # A secret in a URL would be recorded wherever the path is (run.json's recipe, stats, logs):
            # it is dropped here, and the store's library reads credentials from the environment.
            from thresher.storage.remote import has_credentials, without_credentials

            if any(isinstance(p, str) and has_credentials(p) for p in value):
                logging.getLogger(__name__).warning(
                    "credentials written into an input URL are ignored (set them in the environment, e.g. "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
                value = [without_credentials(p) if isinstance(p, str) else p for p in value]
        return value


class IngestConfig(StrictModel):
    """How inputs are read into the run: batch sizes, the document size limit, and what a file
    that quarantines many rows does."""

    batch_rows: int = Field(2048, gt=0, description="rows per Arrow record batch and row group")
    batch_bytes: int = Field(32 << 20, gt=0, description="text bytes per batch before it is cut")
    max_doc_bytes: int = Field(
        2 << 20, gt=0, description="documents with more UTF-8 bytes than this are quarantined"
    )
    extraction_time_limit_s: float = Field(
        5.0, gt=0, description="WARC inputs: seconds the HTML extractor may spend on one page; a page that "
        "takes longer is quarantined (extraction_timeout)"
    )
    max_quarantine_share: float = Field(
        0.5, ge=0, le=1, description="warn about a file that quarantines more than this share of its rows"
    )
    strict: bool = Field(
        False, description="fail the ingest (once written and in the catalog) when a file is over "
        "max_quarantine_share or unreadable"
    )

    # Settings that judge the output rather than shape it: not part of a shard's cache key.
    REPORTING_ONLY: ClassVar[frozenset[str]] = frozenset({"max_quarantine_share", "strict"})


class ScorerSpec(StrictModel):
    """One scorer or judge and its parameters."""

    name: str = Field(description="a registered name, or name@version (default: the newest version)")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the scorer's parameters (checked against its class when the recipe loads)")


DEFAULT_SCORERS = (ScorerSpec(name="heuristics"), ScorerSpec(name="langid"))


class SelectionStep(StrictModel):
    """One named predicate of a selection funnel."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the step in the funnel")
    sql: str = Field(min_length=1, description="a SQL boolean expression over the <table>_scored view")


class SelectionRecipe(StrictModel):
    """SQL predicates over the catalog (applied in order, each narrowing the last), then an
    optional cap. Same recipe + same run + same seed -> the same selection, byte for byte."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="written to selections/<name>/")
    table: Literal["documents", "instructions"] = Field(
        "documents", description="the data table selected from (predicates see <table>_scored)")
    seed: int = Field(0, description="recorded in selection.json (a SQL selection draws nothing at random)")
    where: list[SelectionStep] = Field(
        default_factory=list, description="predicates applied in order, each narrowing the last (the funnel)")
    limit: int | None = Field(None, gt=0, description="keep at most this many rows, ranked by order_by")
    order_by: str | None = Field(None, description="SQL ranking expression for limit; ties by doc_id")
    license: str | None = Field(None, description="licence of the selected data, for exports")

    def content_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
