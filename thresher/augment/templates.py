"""Versioned Evol-Instruct prompts, shipped as package data in `thresher/augment/prompts/*.yaml`.

Three prompt files, each with numbered, immutable versions (a change is a new number, which is part
of every attempt's key and of the `*_prompt_version` columns):

- `evolve.yaml`: the six operations (five in-depth, one in-breadth) with their methods, one worked
  example each, the input formats of `complicate_input`, and the template's own words that an
  evolved instruction must not copy (elimination rule 4);
- `equality.yaml`: the "Equal / Not Equal" information-gain check (elimination rule 1);
- `respond.yaml`: the chat that answers an evolved instruction.

Evolved and judged text is untrusted data. It is sanitised with the judges' `sanitize` (chat control
tokens defused, marker openers broken up) and, where it is data rather than the user's request,
enclosed between markers that carry a per-row id derived from the content
(`<<<INSTRUCTION id=3f9a1c>>> ... <<<END INSTRUCTION id=3f9a1c>>>`). Text is inserted by plain
replacement, so braces in data are harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from thresher.judges.templates import defuse_controls, row_nonce, sanitize
from thresher.llm.protocol import Chat

# Canonical order: the RNG picks among the enabled operations in this order, so it must never change.
OPERATIONS = ("add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth")
DEPTH_OPERATIONS = OPERATIONS[:5]
_MARKER_LABELS = {"instruction": "INSTRUCTION", "first": "FIRST INSTRUCTION", "second": "SECOND INSTRUCTION"}
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(delimited))?\}")


def _render(template: str, values: dict[str, str], *, hardened: bool) -> str:
    """Fill `{name}` and `{name:delimited}` placeholders in one pass (inserted text is never rescanned).
    Hardened templates sanitise delimited data fully and plain insertions' control tokens only."""
    delimited = set(re.findall(r"\{(\w+):delimited\}", template))
    data = {k: (v if not hardened else sanitize(v) if k in delimited else defuse_controls(v))
            for k, v in values.items()}
    nonce = row_nonce(values)

    def fill(match: re.Match) -> str:
        name, form = match.group(1), match.group(2)
        if name not in data:
            return match.group(0)
        if form is None:
            return data[name]
        label = _MARKER_LABELS.get(name, name.upper())
        return f"<<<{label} id={nonce}>>>\n{data[name]}\n<<<END {label} id={nonce}>>>"

    return _PLACEHOLDER.sub(fill, template).strip()


def _load(task: str) -> dict[str, Any]:
    text = resources.files("thresher.augment").joinpath("prompts", f"{task}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _pick(task: str, version: int | None) -> tuple[int, dict[str, Any], dict[str, Any]]:
    spec = _load(task)
    versions = {int(k): v for k, v in spec["versions"].items()}
    chosen = max(versions) if version is None else int(version)
    if chosen not in versions:
        raise ValueError(f"augment prompt {task!r} has versions {sorted(versions)}, not {version}")
    return chosen, spec, versions[chosen]


def latest_version(task: str) -> int:
    return max(int(k) for k in _load(task)["versions"])


def available_prompts() -> list[tuple[str, int, bool]]:
    """(task, version, hardened) of every shipped prompt."""
    rows = []
    for task in ("evolve", "equality", "respond"):
        for version, body in sorted(_load(task)["versions"].items()):
            rows.append((task, int(version), bool(body.get("hardened", False))))
    return rows


@dataclass(frozen=True)
class Operation:
    name: str
    kind: str  # "depth" | "breadth"
    method: str
    evolved: str  # the worked example's evolved instruction (complicate_input: per format)
    formats: tuple[tuple[str, str], ...] = ()  # complicate_input: (format, example evolved instruction)


@dataclass(frozen=True)
class EvolveTemplate:
    version: int
    hardened: bool
    system: str
    depth: str
    breadth: str
    template_phrases: tuple[str, ...]
    example: str
    operations: dict[str, Operation]
    stop: tuple[str, ...] = ()

    def formats(self, operation: str) -> tuple[str, ...]:
        return tuple(name for name, _ in self.operations[operation].formats)

    def _user(self, operation: str, instruction: str, detail: str | None) -> str:
        op = self.operations[operation]
        if op.kind == "breadth":
            return _render(self.breadth, {"instruction": instruction}, hardened=self.hardened)
        method = op.method.replace("{format}", detail or "")
        return _render(self.depth.replace("{method}", method), {"instruction": instruction}, hardened=self.hardened)

    def render(self, operation: str, instruction: str, detail: str | None = None) -> Chat:
        """The chat that evolves `instruction` with `operation` (`detail`: complicate_input's format):
        system prompt, the worked example as an earlier turn, then the instruction."""
        if operation not in self.operations:
            raise ValueError(f"unknown evolution operation {operation!r}; known: {', '.join(self.operations)}")
        op = self.operations[operation]
        evolved = dict(op.formats).get(detail or "", op.evolved) if op.formats else op.evolved
        chat: Chat = []
        if self.system.strip():
            chat.append({"role": "system", "content": self.system.strip()})
        chat.append({"role": "user", "content": self._user(operation, self.example, detail)})
        chat.append({"role": "assistant", "content": evolved})
        chat.append({"role": "user", "content": self._user(operation, instruction, detail)})
        return chat


@lru_cache(maxsize=16)
def load_evolve_template(version: int | None = None) -> EvolveTemplate:
    chosen, _, body = _pick("evolve", version)
    operations = {}
    for name in OPERATIONS:
        op = body["operations"][name]
        formats = tuple((str(k), str(v)) for k, v in (op.get("formats") or {}).items())
        operations[name] = Operation(name, op["kind"], op.get("method", ""), op.get("evolved", ""), formats)
    return EvolveTemplate(
        version=chosen,
        hardened=bool(body.get("hardened", False)),
        system=body.get("system", ""),
        depth=body["depth"],
        breadth=body["breadth"],
        template_phrases=tuple(body.get("template_phrases", ())),
        example=body["example"],
        operations=operations,
        stop=tuple(body.get("stop") or ()),
    )


@dataclass(frozen=True)
class EqualityTemplate:
    version: int
    hardened: bool
    system: str
    user: str
    equal: str  # the candidate token that means "Equal"
    not_equal: str  # ... and "Not (Equal)"
    max_new_tokens: int

    def render(self, first: str, second: str) -> Chat:
        chat: Chat = []
        if self.system.strip():
            chat.append({"role": "system", "content": self.system.strip()})
        chat.append({"role": "user", "content": _render(self.user, {"first": first, "second": second},
                                                        hardened=self.hardened)})
        return chat


@lru_cache(maxsize=16)
def load_equality_template(version: int | None = None) -> EqualityTemplate:
    chosen, spec, body = _pick("equality", version)
    candidates = spec["candidates"]
    return EqualityTemplate(chosen, bool(body.get("hardened", False)), body.get("system", ""), body["user"],
                            str(candidates["equal"]), str(candidates["not_equal"]),
                            int((body.get("generate") or {}).get("max_new_tokens", 4)))


@dataclass(frozen=True)
class RespondTemplate:
    version: int
    hardened: bool
    system: str
    user: str

    def render(self, instruction: str) -> Chat:
        chat: Chat = []
        if self.system.strip():
            chat.append({"role": "system", "content": self.system.strip()})
        chat.append({"role": "user", "content": _render(self.user, {"instruction": instruction},
                                                        hardened=self.hardened)})
        return chat


@lru_cache(maxsize=16)
def load_respond_template(version: int | None = None) -> RespondTemplate:
    chosen, _, body = _pick("respond", version)
    return RespondTemplate(chosen, bool(body.get("hardened", False)), body.get("system", ""), body["user"])
