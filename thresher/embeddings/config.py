"""Settings of the embedding stages: embed, semantic dedup, diversity selection, judge distillation.

Every model forbids unknown keys (`StrictModel`), so a typo in a recipe is an error naming the key.
`EmbeddingsConfig` is the recipe section that holds them all; each also runs on its own from the
CLI (`thresher embeddings ...`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from thresher.config_base import StrictModel, load_yaml_model
from thresher.dedup.config import SurvivorRule

DataTable = Literal["documents", "instructions"]
_NAME = r"^[A-Za-z0-9_.-]+$"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def config_hash(model: StrictModel) -> str:
    return hashlib.blake2b(json.dumps(model.model_dump(mode="json"), sort_keys=True).encode(),
                           digest_size=8).hexdigest()


class EmbedConfig(StrictModel):
    """Which model embeds which column of which table (see thresher.embeddings.scorer)."""

    model: str = Field("all-minilm-l6-v2", description="packaged name, sentence-transformers dir or HF cache id")
    backend: Literal["auto", "onnx", "sentence_transformers", "static"] = Field(
        "auto", description="onnx: onnxruntime, no torch; static: mean of static token vectors (a model2vec model, "
        "or the transformer model's distillation, made once into the model cache); auto: static for a model2vec "
        "model, else ONNX on CPU when the model has an ONNX export")
    onnx_file: str | None = Field(None, description="an ONNX export of `model` (default for MiniLM: its int8 build)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: CUDA when available")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="encoder weights' dtype; auto: the backend's choice for the device")
    max_seq_length: int | None = Field(None, ge=2, description="tokens per text at most (default: the model's)")
    batch_size: int = Field(64, gt=0, description="texts per encoder call")
    text_column: str = Field("text", description="the column embedded (e.g. instruction)")
    tag: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,29}$",
                            description="names a second embedding: scores/embed_<tag>@1/")
    table: DataTable | None = Field(None, description="embed only this data table (default: every one)")
    threads: int | None = Field(None, gt=0, description="encoder CPU threads (default: the runtime's)")

    def scorer(self):
        from thresher.embeddings.scorer import EmbeddingScorer

        return EmbeddingScorer(**self.model_dump(exclude={"table"}))

    @model_validator(mode="after")
    def _static(self) -> EmbedConfig:
        if self.backend == "static" and self.onnx_file is not None:
            raise ValueError("backend static embeds with a static model: onnx_file does not apply")
        return self


class SemDedupConfig(StrictModel):
    """SemDeDup (Abbas et al. 2023, as NeMo Curator): k-means over the embeddings, and within each
    cluster every pair at cosine similarity >= threshold is a semantic-duplicate edge; connected
    components are the duplicate groups; one survivor per group."""

    table: DataTable | None = Field(None, description="only this data table (default: each one, on its own)")
    threshold: float = Field(0.9, gt=0.0, le=1.0, description="cosine similarity of a duplicate pair (1 - eps)")
    clusters: int | None = Field(None, ge=1, description="k-means clusters; default ceil(rows / target_cluster_size)")
    target_cluster_size: int = Field(1000, ge=2, description="rows per cluster the default k aims at")
    kmeans_iterations: int = Field(20, ge=1, le=1000, description="k-means iterations")
    kmeans_sample: int = Field(100_000, ge=1, description="vectors k-means trains on at most (a seeded sample)")
    seed: int | None = Field(None, description="k-means seed; None: the run's seed (run.json)")
    survivor: SurvivorRule = Field(
        "lowest_doc_id", description="which member of a group is kept: lowest doc_id, or highest/lowest "
        "`survivor_column` (ties and missing values: lowest doc_id)")
    survivor_column: str | None = Field(None, description="a score column for highest_score/lowest_score")
    block_rows: int = Field(4096, ge=16, description="rows per block of a cluster's similarity matrix")
    memory_limit: str = Field("2GB", description="DuckDB memory limit of the grouping step (spills beyond it)")

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError(f"memory_limit {value!r} is not a size such as '2GB' or '512MiB'")
        return value.strip()

    @model_validator(mode="after")
    def _survivor(self) -> SemDedupConfig:
        if self.survivor == "lowest_doc_id" and self.survivor_column is not None:
            raise ValueError("survivor_column is only used by survivor: highest_score or lowest_score")
        if self.survivor != "lowest_doc_id" and not self.survivor_column:
            raise ValueError(f"survivor: {self.survivor} needs survivor_column")
        return self


class DiversitySelection(StrictModel):
    """Keep diverse, high-scoring rows: DEITA's rule (rank by a score, keep a row only if its cosine
    similarity to every row kept so far is <= threshold, until k) or k-center (greedy farthest
    point: the k rows that cover the candidates best)."""

    name: str = Field(pattern=_NAME, description="written to selections/<name>/")
    table: DataTable = Field("instructions", description="the data table selected from")
    method: Literal["deita", "kcenter"] = Field("deita", description="deita: score order with a similarity cap; "
                                                "kcenter: greedy farthest point")
    score_sql: str | None = Field(
        None, description="SQL ranking expression over <table>_scored, higher first (e.g. judge_deita_complexity_"
        "score * judge_deita_quality_score); None: doc_id order (a hash: effectively random); ties by doc_id")
    where: str | None = Field(None, description="SQL predicate over <table>_scored restricting candidates "
                              "(e.g. NOT semdedup_is_duplicate)")
    threshold: float = Field(0.9, gt=-1.0, le=1.0, description="deita: a row whose cosine similarity to a kept "
                             "row exceeds this is skipped")
    k: int | None = Field(None, gt=0, description="rows to keep at most (required by kcenter)")
    index: Literal["auto", "flat", "ivf"] = Field(
        "auto", description="kept-set index of deita: flat (exact, in memory) or ivf (approximate, int8 codes, "
        "on disk); auto: flat up to `flat_max_rows` candidates")
    flat_max_rows: int = Field(200_000, gt=0, description="index auto: flat up to this many candidates, ivf beyond")
    ivf_lists: int | None = Field(None, gt=0, description="IVF lists (default ~4 sqrt(candidates))")
    ivf_probe: int = Field(16, gt=0, description="IVF lists searched per query (recall vs speed)")
    seed: int | None = Field(None, description="IVF training sample seed; None: the run's seed")
    batch_rows: int = Field(2048, gt=0, description="candidates per streamed batch")
    random_baseline: bool = Field(True, description="report the mean pairwise similarity of a same-size random "
                                  "sample of the candidates next to the selection's")
    report_sample: int = Field(2000, gt=1, description="rows whose pairwise similarities the report measures")

    @model_validator(mode="after")
    def _k_for_kcenter(self) -> DiversitySelection:
        if self.method == "kcenter" and self.k is None:
            raise ValueError("method kcenter needs k")
        return self

    def content_hash(self) -> str:
        return config_hash(self)


class DistillConfig(StrictModel):
    """Distil a judge into a regression head on frozen embeddings (the FineWeb-Edu classifier
    recipe): sample rows the judge scored, fit ridge regression on their embeddings, report held-out
    agreement, save the head, and score every row with it."""

    target: str = Field(description="the judge's score column (or a SQL expression) over <table>_scored, "
                        "e.g. judge_edu_score")
    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,49}$",
                             description="head name: scorer distilled_<name>; default from `target`")
    table: DataTable = Field("documents", description="the data table the judge scored")
    where: str | None = Field(None, description="SQL predicate restricting the training rows")
    sample: int = Field(20_000, ge=10, description="rows sampled (seeded) for training + held-out evaluation")
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the sample held out for the report")
    alphas: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0], min_length=1,
                                description="ridge penalties tried; chosen by k-fold CV on the training rows")
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds choosing the ridge penalty")
    positive_threshold: float | None = Field(
        None, description="a row is positive when score >= this (for F1); default: the training median")
    seed: int | None = Field(None, description="sampling and split seed; None: the run's seed")
    score_all: bool = Field(True, description="score every row of `table` with the head (sidecar)")

    @field_validator("alphas")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(a < 0 for a in value):
            raise ValueError("alphas must be >= 0")
        return value

    @model_validator(mode="after")
    def _named(self) -> DistillConfig:
        if self.name is None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.target):
            raise ValueError("target is a SQL expression: give the head a `name`")
        return self

    @property
    def head_name(self) -> str:
        if self.name is not None:
            return self.name
        stem = self.target.lower()
        return stem[: -len("_score")] if stem.endswith("_score") and len(stem) > len("_score") else stem


class EmbeddingsConfig(StrictModel):
    """The recipe section: embed, then optionally semantic dedup, judge distillation, diversity selections."""

    embed: EmbedConfig = Field(EmbedConfig(), description="the embedding model and what it embeds")
    semdedup: SemDedupConfig | None = Field(None, description="semantic dedup over the embeddings; omit to skip")
    distill: list[DistillConfig] = Field(default_factory=list, description="judges distilled into heads")
    diversity: list[DiversitySelection] = Field(
        default_factory=list, description="diversity selections; each writes selections/<name>/")

    @model_validator(mode="after")
    def _unique(self) -> EmbeddingsConfig:
        names = [d.name for d in self.diversity]
        if len(set(names)) != len(names):
            raise ValueError(f"diversity selection names must be unique, got {names}")
        heads = [d.head_name for d in self.distill]
        if len(set(heads)) != len(heads):
            raise ValueError(f"distill head names must be unique, got {heads}")
        return self


def recorded_embed_config(run) -> EmbedConfig:
    """The embedding settings the run's last embed step used (run.json), else the defaults: what
    semdedup, distillation and diversity selection read when not told."""
    manifest = run.read_manifest() if run.exists() else {}
    recorded = manifest.get("stages", {}).get("embed", {}).get("config")
    return EmbedConfig.model_validate(recorded) if recorded else EmbedConfig()


def load_embeddings_config(path) -> EmbeddingsConfig:
    config = load_yaml_model(path, EmbeddingsConfig)
    assert isinstance(config, EmbeddingsConfig)
    return config
