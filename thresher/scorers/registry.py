"""The one registry of scorers and judges: versioned names, so recipes and the CLI can name them
without importing classes.

A registration is `name@version` -> "module:Class", imported on first use so that naming a scorer
never loads another's module or model. `name@version` resolves to that version; a bare `name` to the
newest one. Registering a `name@version` twice is an error, not a silent replacement. A
registration may fix parameters by its name (`preset`): a judge's `_gen` variant is the judge in
generate mode. A new scorer is one class and one line below; tests/scorers/test_contract.py then
checks it against the Scorer protocol.

A judge's registered version is its code version; the prompt version (a parameter) is appended to
the version of the scorer it builds (`judge_alpagasus@1.2`: code 1, prompt 2).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from thresher.scorers.base import Scorer, Stage

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")


class UnknownScorerError(ValueError):
    """A scorer name (or name@version) that is not registered."""


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    target: str  # "module:Class"
    preset: Mapping[str, Any] = field(default_factory=dict)  # parameters this name fixes

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def load(self) -> type:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, dict[str, Registration]] = {}


def register(name: str, version: str, target: str, preset: Mapping[str, Any] | None = None) -> Registration:
    """Add `name@version` -> "module:Class" (the class is imported when first used)."""
    if not _NAME.match(name) or not _VERSION.match(version) or ":" not in target:
        raise ValueError(f"bad registration {name!r}@{version!r} -> {target!r}: want a lower-case name, "
                         "a dotted numeric version and a 'module:Class' target")
    versions = _REGISTRY.setdefault(name, {})
    if version in versions:
        raise ValueError(f"scorer {name}@{version} is registered twice ({versions[version].target} and {target}): "
                         "a changed scorer takes a new version")
    versions[version] = Registration(name, version, target, MappingProxyType(dict(preset or {})))
    return versions[version]


for _line in (
    ("heuristics", "1", "thresher.scorers.heuristics:HeuristicsScorer"),
    ("langid", "1", "thresher.scorers.langid:LanguageIdScorer"),
    ("kenlm", "1", "thresher.perplexity.kenlm_scorer:KenLMPerplexityScorer"),
    ("lm_perplexity", "1", "thresher.perplexity.lm_scorer:CausalLMPerplexityScorer"),
    ("ifd", "1", "thresher.judges.ifd:IFDScorer"),
    # Sentence embeddings and heads distilled from a judge ({"head": "<run>/models/distilled_<name>"}).
    ("embed", "1", "thresher.embeddings.scorer:EmbeddingScorer"),
    ("distilled", "1", "thresher.embeddings.distill:DistilledScorer"),
    ("classifier", "1", "thresher.classifier.scorer:ClassifierScorer"),  # {"model": "<run>/models/classifier_<name>"}
    ("decontam", "1", "thresher.decontam.scorer:DecontaminationScorer"),  # {"benchmarks": [...]}
):
    register(*_line)

# SLM judges: each in expected mode (the judge's name) and in generate mode (`<name>_gen`), so both
# can live in one run (their columns differ by the same suffix).
for _name, _cls in (
    ("judge_alpagasus", "AlpaGasusJudge"),
    ("judge_ultrafeedback", "UltraFeedbackJudge"),
    ("judge_edu", "EduJudge"),
    ("judge_deita_complexity", "DeitaComplexityJudge"),
    ("judge_deita_quality", "DeitaQualityJudge"),
):
    register(_name, "1", f"thresher.judges.judges:{_cls}")
    register(f"{_name}_gen", "1", f"thresher.judges.judges:{_cls}", {"mode": "generate"})
# Ask-LLM judges: P("yes") to a yes/no question, one forward pass, expected mode only (no `_gen`).
register("judge_askllm", "1", "thresher.judges.askllm:AskLLMJudge")
register("judge_askllm_edu", "1", "thresher.judges.askllm:AskLLMEduJudge")


def _version_order(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def available_scorers(stage: Stage | None = None) -> list[str]:
    """Registered names (each resolves to its newest version); with `stage`, only the scorers that
    stage runs (this imports their classes, never their models)."""
    names = sorted(_REGISTRY)
    return names if stage is None else [n for n in names if scorer_class(n).stage == stage]


def registrations() -> list[Registration]:
    """Every registration, every version, by name then version."""
    return [versions[v] for _, versions in sorted(_REGISTRY.items()) for v in sorted(versions, key=_version_order)]


def registration(name: str) -> Registration:
    """The registration of `name@version`, or of `name`'s newest version."""
    base, _, version = name.partition("@")
    versions = _REGISTRY.get(base)
    if not versions:
        raise UnknownScorerError(f"unknown scorer {name!r}; available: {', '.join(available_scorers())}")
    if not version:
        return versions[max(versions, key=_version_order)]
    if version not in versions:
        raise UnknownScorerError(f"scorer {base!r} has no version {version!r}; registered: "
                                 f"{', '.join(sorted(versions, key=_version_order))}")
    return versions[version]


def scorer_class(name: str) -> type:
    return registration(name).load()


def _with_preset(reg: Registration, params: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    for key, value in reg.preset.items():
        if params.setdefault(key, value) != value:
            raise ValueError(f"{reg.name} sets {key}={value!r}; got {key}={params[key]!r}")
    return params


def build_scorer(name: str, params: Mapping[str, Any] | None = None) -> Scorer:
    reg = registration(name)
    params = _with_preset(reg, params)
    try:
        return reg.load()(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for scorer {name!r}: {exc}") from None


# -- parameters, checked without building the scorer (no model file is touched) ---------------------


def _init_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    """A strict pydantic model of the dataclass's parameters (their annotated types and defaults)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in _init_fields(cls):
        if _required(f):
            fields[f.name] = (hints[f.name], ...)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
        else:
            fields[f.name] = (hints[f.name], f.default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def parameters(name: str) -> dict[str, bool]:
    """The scorer's parameters -> whether each is required (has no default); a parameter the name
    presets is not one the user gives."""
    reg = registration(name)
    return {f.name: _required(f) for f in _init_fields(reg.load()) if f.name not in reg.preset}


def accepted_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `params` scorer `name` takes: command-line flags shared by several judges
    (e.g. --mode, which IFD has no use for) go only to those that have them. An unknown name is
    left for `build_scorer` to report."""
    try:
        known = parameters(name)
    except UnknownScorerError:
        return dict(params)
    return {k: v for k, v in params.items() if k in known}


def required_params(name: str) -> list[str]:
    return [p for p, required in parameters(name).items() if required]


def check_params(name: str, params: Mapping[str, Any] | None) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with naming scorer `name` with `params`, as (where, message) pairs: where is
    ("name",) or ("params", <key>). Types and names only; checks that need files (does the model
    exist?) happen when the scorer is built."""
    try:
        reg = registration(name)
    except UnknownScorerError as exc:
        return [(("name",), str(exc))]
    params = dict(params or {})
    problems = [(("params", key), f"{reg.name} sets {key}={value!r}")
                for key, value in reg.preset.items() if key in params and params[key] != value]
    known = parameters(name)
    try:
        _params_model(reg.load()).model_validate(_with_preset(reg, {k: v for k, v in params.items()
                                                                    if k not in reg.preset}))
    except ValidationError as exc:
        for error in exc.errors():
            where = ("params", *(str(part) for part in error["loc"]))
            if error["type"] == "extra_forbidden":
                message = f"unknown parameter for {reg.name} (its parameters: {', '.join(known) or 'none'})"
            elif error["type"] == "missing":
                message = f"missing: a required parameter of {reg.name}"
            else:
                message = f"{error['msg']} (parameter of {reg.name})"
            problems.append((where, message))
    return problems


# -- what a scorer writes, from its class alone (nothing is built, no model is located) --------------


@dataclass(frozen=True)
class Description:
    key: str  # name@version
    stage: Stage
    table: str | None  # the data table it reads; None: every table
    columns: tuple[str, ...]  # after doc_id
    required: tuple[str, ...]  # parameters without a default
    optional: tuple[str, ...]
    column_params: tuple[tuple[str, str], ...]  # (parameter, how it changes the columns)


def describe(name: str) -> Description:
    """The registration's columns as its class declares them. "{name}" becomes the registered name,
    unless a required parameter names the output (a distilled head): then it stays `<name>`, and
    `column_params` says what it becomes."""
    reg = registration(name)
    cls = reg.load()
    params = parameters(reg.key)
    notes = tuple((p, how) for p, how in cls.column_params.items() if p not in reg.preset)
    stem = "<name>" if any(params.get(p) for p, _ in notes) else reg.name
    return Description(
        key=reg.key, stage=cls.stage, table=cls.table,
        columns=tuple(column.format(name=stem) for column in cls.output_columns),
        required=tuple(p for p, required in params.items() if required),
        optional=tuple(p for p, required in params.items() if not required),
        column_params=notes,
    )
