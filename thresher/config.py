"""Pydantic models for recipes and stage configs, loaded from YAML.

Every model forbids unknown keys, so a typo in a recipe is an error that names the key and the
file rather than a setting silently ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from thresher.augment.config import AugmentConfig
from thresher.classifier.config import ClassifierConfig, unique_names
from thresher.config_base import (  # noqa: F401  (re-exported: the public config namespace)
    DEFAULT_SCORERS,
    ConfigError,
    IngestConfig,
    InputFormat,
    InputSpec,
    ScorerSpec,
    SelectionRecipe,
    SelectionStep,
    StrictModel,
    load_yaml_model,
    repeated,
)
from thresher.decontam.config import SCORER_NAME as DECONTAM_SCORER
from thresher.decontam.config import DecontaminationConfig
from thresher.dedup.config import DedupConfig
from thresher.dsir.config import DsirConfig
from thresher.embeddings.config import EmbeddingsConfig
from thresher.eval.config import EvalConfig, unique_evals
from thresher.scorers.registry import check_params, scorer_class

# A scorer listed under the other stage's key: what to write instead.
_WRONG_STAGE = {
    "score": "{name} is a judge: list it under `judges:`, which caches judgments and reads the instruction fields",
    "judge": "{name} is not a judge: list it under `scorers:`",
}


class TaskRunnerSpec(StrictModel):
    """How tasks run: threads on one machine (default), processes for CPU-bound scorers, or Dask
    (a local cluster, or an existing scheduler) to scale out."""

    kind: Literal["threads", "processes", "dask"] = Field(
        "threads", description="threads: one process; processes: worker processes (for CPU-bound scorers); "
        "dask: a LocalCluster, or the scheduler at dask_address")
    workers: int | None = Field(None, gt=0, description="threads/processes/Dask workers; default: CPU count")
    dask_address: str | None = Field(None, description="an existing Dask scheduler, e.g. tcp://host:8786")


class Recipe(StrictModel):
    """An end-to-end curation run: what to read, how to score it, where the run lives."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the run's name, recorded in run.json")
    run_dir: str = Field(description="the run directory (created if absent); relative: to the recipe file")
    seed: int = Field(0, description="the run's seed (run.json): stages whose own seed is null use it")
    inputs: list[InputSpec] = Field(min_length=1, description="the data to ingest; each entry one format")
    ingest: IngestConfig = Field(IngestConfig(), description="batch sizes, size limits and quarantine policy")
    scorers: list[ScorerSpec] = Field(
        default_factory=lambda: list(DEFAULT_SCORERS),
        description="score-stage scorers (see the scorer list below); each writes scores/<name>@<version>/")
    decontamination: DecontaminationConfig | None = Field(
        None, description="benchmark decontamination: adds the decontam scorer to `scorers` and a first step "
        "`decontaminated` (decontam_overlap <= max_overlap) to every SQL selection")
    dedup: DedupConfig | None = Field(None, description="exact + MinHash near-dedup; omit to skip the stage")
    dsir: DsirConfig | None = Field(None, description="DSIR importance weights (+ a resampled selection)")
    judges: list[ScorerSpec] = Field(
        default_factory=list,
        description="SLM judges and IFD (judge_alpagasus, judge_edu, ifd, ...), run after scoring and dedup, "
        "before selection, so selections can use their scores")
    embeddings: EmbeddingsConfig | None = Field(
        None, description="sentence embeddings (+ semantic dedup, judge distillation, diversity selections); "
        "run after the judges, before the selections")
    classifiers: list[ClassifierConfig] = Field(
        default_factory=list, description="fastText quality classifiers (from a judge's labels or a reference set), "
        "run after the judges and embeddings, before the selections: columns classifier_<name>_score and "
        "classifier_<name>_pct")
    selections: list[SelectionRecipe] = Field(
        default_factory=list, description="SQL selections, run last; each writes selections/<name>/")
    evaluation: list[EvalConfig] = Field(
        default_factory=list, description="train-and-compare: the same small LM trained on each named selection and "
        "on random data of the same size, over seeds, measured on held-out sets; run after the selections")
    augment: AugmentConfig | None = Field(
        None, description="Evol-Instruct over the instructions (optionally a selection of them) into an augmented "
        "run, which is then scored, judged, deduplicated against this run and filtered by the instruction selections")
    task_runner: TaskRunnerSpec = Field(TaskRunnerSpec(), description="how the mapped tasks run")

    @model_validator(mode="after")
    def _selection_names_unique(self) -> Recipe:
        # SQL selections, the DSIR selection and diversity selections all write selections/<name>/.
        names = [s.name for s in self.selections]
        if self.dsir is not None and self.dsir.selection is not None:
            names.append(self.dsir.selection.name)
        if self.embeddings is not None:
            names += [d.name for d in self.embeddings.diversity]
        clashes = repeated(names)
        if clashes:
            raise ValueError(f"selection names must be unique (each writes selections/<name>/): {', '.join(clashes)}")
        unique_names(list(self.classifiers))
        unique_evals(list(self.evaluation))
        for evaluation in self.evaluation:
            missing = [n for n in evaluation.selections if n not in names]
            if missing:
                raise ValueError(f"evaluation {evaluation.name!r}: no selection named {', '.join(missing)} in this "
                                 f"recipe (selections: {', '.join(names) or 'none'})")
        return self

    @model_validator(mode="after")
    def _decontaminate(self) -> Recipe:
        """With a `decontamination` section, score `decontam` with the other scorers and put the step
        `decontaminated` first in every SQL selection, so the recipe as loaded (and recorded in
        run.json and selection.json) states the rule. Idempotent: a recipe dumped after this loads
        to itself."""
        rule = self.decontamination
        if rule is None:
            return self
        spec = ScorerSpec(name=DECONTAM_SCORER, params=rule.scorer_params())
        listed = [s for s in self.scorers if s.name.partition("@")[0] == DECONTAM_SCORER]
        if listed and any(s.params != spec.params for s in listed):
            raise ValueError("decontamination: the decontam scorer is also listed under `scorers` with other "
                             "parameters; give the benchmarks in one place")
        problems = check_params(spec.name, spec.params)
        if problems:
            raise ValueError("decontamination: " + "; ".join(message for _, message in problems))
        step = rule.selection_step()
        selections = []
        for selection in self.selections:
            where = list(selection.where)
            if where and where[0].name == step.name:
                if where[0] != step:
                    raise ValueError(f"selection {selection.name!r}: its first step is named {step.name!r}, "
                                     "which the decontamination rule writes; rename it")
            else:
                selection = selection.model_copy(update={"where": [step, *where]})
            selections.append(selection)
        # The model is frozen; this validator is where its final values are decided.
        object.__setattr__(self, "scorers", self.scorers if listed else [*self.scorers, spec])
        object.__setattr__(self, "selections", selections)
        # Selections that are not SQL funnels (DSIR resampling, diversity) get the rule in their `where`.
        if self.dsir is not None and self.dsir.selection is not None:
            chosen = self.dsir.selection
            dsir_selection = chosen.model_copy(update={"where": _with_rule(step.sql, chosen.where)})
            object.__setattr__(self, "dsir", self.dsir.model_copy(update={"selection": dsir_selection}))
        if self.embeddings is not None and self.embeddings.diversity:
            diversity = [d.model_copy(update={"where": _with_rule(step.sql, d.where)})
                         for d in self.embeddings.diversity]
            object.__setattr__(self, "embeddings", self.embeddings.model_copy(update={"diversity": diversity}))
        return self

    @field_validator("scorers", "judges")
    @classmethod
    def _registered_with_valid_params(cls, specs: list[ScorerSpec], info: ValidationInfo) -> list[ScorerSpec]:
        """Every scorer is registered, listed under the stage that runs it, and given parameters its
        class takes, with the types it declares: a typo fails when the recipe loads, before any work.
        (Checks that need files, such as whether a model exists, run when the scorer is built.)"""
        stage = "score" if info.field_name == "scorers" else "judge"
        problems: list[InitErrorDetails] = []
        for i, spec in enumerate(specs):
            found = check_params(spec.name, spec.params)
            if not found and scorer_class(spec.name).stage != stage:
                found = [(("name",), _WRONG_STAGE[stage].format(name=spec.name))]
            problems += [InitErrorDetails(type=PydanticCustomError("scorer_spec", "{message}", {"message": message}),
                                          loc=(i, *where), input=spec.name) for where, message in found]
        if problems:
            # Raised inside a validator, a ValidationError's locations nest under the field's:
            # `scorers.2.params.modle: unknown parameter for kenlm`.
            raise ValidationError.from_exception_data(info.field_name or "scorers", problems)
        return specs

    def content_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _with_rule(rule: str, where: str | None) -> str:
    """`where` restricted by `rule`; a `where` that already starts with the rule is kept as it is."""
    if where is None or where == rule:
        return rule
    prefix = f"({rule}) AND "
    return where if where.startswith(prefix) else f"{prefix}({where})"


def load_selection_recipe(path: str | Path) -> SelectionRecipe:
    recipe = load_yaml_model(path, SelectionRecipe)
    assert isinstance(recipe, SelectionRecipe)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Load a recipe; a relative `run_dir`, input path or eval-set/probe path is taken relative to the recipe file."""
    path = Path(path)
    recipe = load_yaml_model(path, Recipe)
    assert isinstance(recipe, Recipe)
    base = path.resolve().parent

    def anchored(p: str) -> str:
        return p if Path(p).is_absolute() or "://" in p else str(base / p)

    inputs = [spec.model_copy(update={"paths": [anchored(p) for p in spec.paths]}) for spec in recipe.inputs]
    evaluation = [config.model_copy(update={
        "eval_sets": [s.model_copy(update={"paths": [anchored(p) for p in s.paths]}) for s in config.eval_sets],
        "probes": [p.model_copy(update={"path": anchored(p.path)}) for p in config.probes]})
        for config in recipe.evaluation]
    return recipe.model_copy(update={"run_dir": anchored(recipe.run_dir), "inputs": inputs, "evaluation": evaluation})
