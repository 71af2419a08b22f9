"""Settings of `thresher eval`: which selections are compared with random data, on which held-out
sets, with which small causal LM and training budget, over which seeds.

Every arm (each selection, and `random`: a seeded sample of the same table) trains the same model
from the same initialisation seed on exactly `tokens` training tokens of its own data for the same
number of steps; only the data differs. Evaluation sets come from files (any format `thresher
ingest` reads) or from SQL over the run's catalog, and are checked for n-gram overlap with every
arm's training documents before anything trains.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from thresher.config_base import InputFormat, StrictModel, load_yaml_model, repeated
from thresher.decontam.config import DEFAULT_N, BenchmarkSpec

EVAL_NAME = r"^[a-z][a-z0-9_-]{0,39}$"
RANDOM_ARM = "random"
DataTable = Literal["documents", "instructions"]


class EvalSetSpec(StrictModel):
    """One held-out evaluation set: files, or a query over the run's catalog (its `text` column)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the set in the results")
    paths: list[str] = Field(default_factory=list, description="files, globs, directories or hf://datasets/... "
                             "(as inputs; in a recipe, relative to the recipe file)")
    fields: list[str] | None = Field(None, min_length=1, description="fields joined into the text (default: the "
                                     "reader's text)")
    format: InputFormat = Field("auto", description="reader preset, as for inputs")
    sql: str | None = Field(None, description="a query over the run's catalog returning a `text` column (and "
                            "`doc_id` when it reads the trained table: those rows are then left out of every arm)")
    max_tokens: int = Field(65_536, ge=64, description="tokens of the set evaluated (its first texts, in order)")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> EvalSetSpec:
        if bool(self.paths) == bool(self.sql):
            raise ValueError(f"eval set {self.name!r}: give either `paths` or `sql`")
        if self.sql and (self.fields or self.format != "auto"):
            raise ValueError(f"eval set {self.name!r}: fields and format belong to `paths`")
        return self

    def benchmark(self) -> BenchmarkSpec:
        """The files as the decontamination readers take them."""
        return BenchmarkSpec(name=self.name, paths=self.paths, fields=self.fields, format=self.format)


class ProbeSetSpec(StrictModel):
    """A multiple-choice probe set (question, choices, answer), scored by log-likelihood as
    lm-evaluation-harness does: the choice the model finds most likely after the question."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the probe set in the results")
    path: str = Field(description="a JSON Lines file, one item a line (in a recipe, relative to the recipe file)")
    question_field: str = Field("question", description="the context every choice continues")
    choices_field: str = Field("choices", description="a list of continuations")
    answer_field: str = Field("answer", description="the index of the right choice (or its text)")
    max_items: int = Field(1_000, ge=1, description="items scored at most (the first ones)")


class TinyLMSettings(StrictModel):
    """The small causal LM every arm trains (a Llama architecture from transformers, built from this
    config, never downloaded)."""

    layers: int = Field(2, ge=1, le=48, description="transformer blocks")
    hidden: int = Field(64, ge=8, le=8192, description="hidden size")
    heads: int = Field(4, ge=1, le=64, description="attention heads (must divide hidden)")
    intermediate: int | None = Field(None, ge=8, description="MLP width; default 4 x hidden")
    context: int = Field(64, ge=8, le=8192, description="tokens per training window")

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyLMSettings:
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        return self


class TrainSettings(StrictModel):
    """Identical for every arm: the number of steps times batch_size times context is the training budget."""

    steps: int = Field(300, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="windows per step")
    lr: float = Field(1e-2, gt=0, description="peak learning rate (AdamW, linear warm-up, cosine decay)")
    warmup: int = Field(20, ge=0, description="warm-up steps")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    checkpoint_every: int = Field(50, ge=1, description="steps between checkpoints (a killed run resumes there)")
    eval_every: int = Field(50, ge=1, description="steps between points of the loss curves")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's; results depend on it "
                                "bit for bit, so it is part of the cache key")


class EvalConfig(StrictModel):
    """Train-and-compare: each selection and a seeded random sample of the same table, at equal
    tokens, with the same model and budget, over several seeds; loss on held-out sets."""

    name: str = Field(pattern=EVAL_NAME, description="written to eval/runs/<name>/; rows of the eval_* views")
    table: DataTable = Field("documents", description="the table the selections select from")
    selections: list[str] = Field(min_length=1, description="selection names (selections/<name>/) to compare")
    random_where: str | None = Field(None, description="SQL predicate over <table>_scored restricting the random "
                                     "arm's pool (default: every row)")
    tokens: int | None = Field(None, ge=256, description="training tokens of every arm; default: the smallest "
                               "selection's (a larger selection is cut at random to it)")
    max_tokens: int = Field(4_000_000, ge=256, description="tokens read from any one selection at most")
    tokenizer: str = Field("bpe", description="bpe: a byte-level BPE trained on a sample of the random arm's "
                           "pool; bytes: UTF-8 bytes; or a tokenizer directory / packaged model name")
    bpe_vocab: int = Field(512, ge=260, le=65_536, description="tokens of the trained BPE (512 separated "
                           "selections best at small budgets on 2 cores)")
    bpe_sample_chars: int = Field(4_000_000, ge=1_000, description="characters of the pool the BPE learns from")
    eval_sets: list[EvalSetSpec] = Field(min_length=1, description="held-out sets the models are measured on")
    probes: list[ProbeSetSpec] = Field(default_factory=list, description="multiple-choice probe sets (accuracy)")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="one model per arm and seed (init, data order, "
                             "the random sample)")
    model: TinyLMSettings = Field(TinyLMSettings(), description="the small LM")
    train: TrainSettings = Field(TrainSettings(), description="the training budget and schedule")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA (bf16 autocast) when present")
    overlap_n: int = Field(DEFAULT_N, ge=1, description="words per n-gram of the overlap check")
    max_overlap: int = Field(0, ge=0, description="n-grams a training document may share with an eval set")
    on_overlap: Literal["refuse", "warn"] = Field("refuse", description="refuse: stop before training when a "
                                                  "training document overlaps an eval set; warn: go on, loudly")

    @model_validator(mode="after")
    def _unique_names(self) -> EvalConfig:
        clashes = repeated(list(self.selections)) + repeated([s.name for s in self.eval_sets]) \
            + repeated([p.name for p in self.probes]) + repeated([str(s) for s in self.seeds])
        if clashes:
            raise ValueError(f"selections, eval sets, probes and seeds must be unique: {', '.join(clashes)}")
        if RANDOM_ARM in self.selections:
            raise ValueError(f"{RANDOM_ARM!r} names the random arm; rename that selection")
        return self

    @property
    def arms(self) -> list[str]:
        return [*self.selections, RANDOM_ARM]


def unique_evals(configs: list[EvalConfig]) -> list[EvalConfig]:
    clashes = repeated([c.name for c in configs])
    if clashes:
        raise ValueError(f"eval names must be unique (each writes eval/runs/<name>/): {', '.join(clashes)}")
    return configs


class EvalsConfig(StrictModel):
    """A file for `thresher eval run --config` (the recipe's `evaluation:` list alone)."""

    evaluation: list[EvalConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> EvalsConfig:
        unique_evals(list(self.evaluation))
        return self


def load_evals(path) -> EvalsConfig:
    config = load_yaml_model(path, EvalsConfig)
    assert isinstance(config, EvalsConfig)
    return config
