"""The Evol-Instruct stage's configuration (`Recipe.augment`): what to evolve, with which models and
prompts, for how many rounds, and how failed evolutions are eliminated.

Model names are plain strings here (no model is resolved or loaded when a recipe is validated).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from thresher.config_base import StrictModel

OperationName = Literal["add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input",
                        "breadth"]
# The defaults of thresher.llm.packaged (repeated so that validating a recipe imports no model code).
DEFAULT_GENERATOR_MODEL = "smollm2-135m-instruct"
DEFAULT_JUDGE_MODEL = "qwen2.5-coder-0.5b-instruct"
_BACKEND_KINDS = ("transformers", "openai", "llama_cpp", "vllm")


class LMSpec(StrictModel):
    """One language model behind thresher's LM protocol (see `thresher.llm`)."""

    backend: str = Field("transformers", description="transformers, openai, llama_cpp or vllm")
    model: str = Field(DEFAULT_GENERATOR_MODEL, min_length=1, description="model reference (packaged name, "
                       "local directory, .gguf file, HF cache id, or the served model's name)")
    options: dict[str, Any] = Field(default_factory=dict, description="backend options, e.g. {dtype: float32} or "
                                    "{base_url: http://127.0.0.1:8000/v1, concurrency: 16}")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in _BACKEND_KINDS:
            raise ValueError(f"unknown backend {value!r}; known: {', '.join(_BACKEND_KINDS)}")
        return value

    def backend_spec(self):
        from thresher.llm import BackendSpec

        return BackendSpec(self.backend, self.model, self.options)


class GenerationSettings(StrictModel):
    max_new_tokens: int = Field(256, ge=1, le=16384, description="tokens generated at most per reply")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0: greedy decoding (deterministic)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass (1: off)")


class AugmentConfig(StrictModel):
    """Evol-Instruct over a run's instructions: N rounds of evolve -> eliminate -> answer.

    Each round evolves every instruction of the pool once with one operation drawn by a seeded RNG
    from (seed, root_id, round). A surviving evolution replaces its parent in the pool; a failed one
    leaves the parent in the pool, to be evolved again next round (as in the paper)."""

    name: str = Field("evol", pattern=r"^[A-Za-z0-9_.-]+$", description="names the augmented run and its source")
    selection: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$",
        description="seed only the instructions of this selection (<source>/selections/<name>/); default: all")
    sample: int | None = Field(None, gt=0, description="at most this many seeds: a seeded hash sample of doc_ids")
    output_run: str | None = Field(None, description="the augmented run directory; default <source>/augment/<name>")
    rounds: int = Field(4, ge=1, le=32, description="evolution rounds (the paper uses 4)")
    seed: int = Field(0, ge=0, lt=2**63, description="seeds the choice of operation (and sampling, if any)")
    operations: dict[OperationName, float] = Field(
        default_factory=lambda: {op: 1.0 for op in ("add_constraints", "deepen", "concretize", "increase_reasoning",
                                                     "complicate_input", "breadth")},
        description="relative weight of each operation; 0 or absent disables it")
    evolve_prompt_version: int | None = Field(None, description="default: the newest")
    equality_prompt_version: int | None = Field(None, description="default: the newest")
    respond_prompt_version: int | None = Field(None, description="default: the newest")
    generator: LMSpec = Field(default_factory=LMSpec, description="the model that evolves instructions")
    responder: LMSpec | None = Field(None, description="the model that answers them (default: the generator)")
    judge: LMSpec = Field(default_factory=lambda: LMSpec(model=DEFAULT_JUDGE_MODEL),
                          description="the model that judges information gain (Equal / Not Equal)")
    equality_mode: Literal["auto", "logprobs", "generate"] = Field(
        "auto", description="logprobs: P(Equal) vs P(Not) at the reply's first token; generate: decode and parse; "
                            "auto: logprobs when the judge's backend has next-token log-probabilities")
    equal_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="P(Equal) at or above this eliminates")
    evolve: GenerationSettings = Field(default_factory=lambda: GenerationSettings(max_new_tokens=160),
                                       description="decoding of the evolved instructions")
    respond: GenerationSettings = Field(default_factory=lambda: GenerationSettings(max_new_tokens=384),
                                        description="decoding of the responses")
    max_parent_tokens: int = Field(384, ge=8, description="the instruction is cut to this many tokens in prompts")
    sorry_max_words: int = Field(80, ge=1, description="rule 2: a response with 'sorry' under this many words fails")
    batch_size: int = Field(16, ge=1, le=4096, description="attempts per backend call and per checkpoint")
    one_model_at_a_time: bool = Field(
        False, description="unload each local model before a phase that uses another (evolve, judge, respond): "
                           "peak memory of the largest model alone, for a reload per batch; outputs are the same")
    dedup_against_source: bool = Field(
        True, description="in the augment loop: near-deduplicate evolved pairs against the source run's pool")
    select: list[str] | None = Field(
        None, description="in a recipe: the instruction selections applied to the augmented run (default: all)")

    @field_validator("operations")
    @classmethod
    def _some_operation(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()):
            raise ValueError("operation weights must be >= 0")
        if not any(w > 0 for w in value.values()):
            raise ValueError("enable at least one operation (a weight > 0)")
        return value

    @model_validator(mode="after")
    def _versions_positive(self) -> AugmentConfig:
        for field in ("evolve_prompt_version", "equality_prompt_version", "respond_prompt_version"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise ValueError(f"{field} must be >= 1")
        return self

    @property
    def responder_spec(self) -> LMSpec:
        return self.responder or self.generator

    def content_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
