"""Versioned judge prompts, shipped as package data in `thresher/judges/prompts/<task>.yaml`.

A prompt file holds one task (its fields, score scale and how to parse a generated reply) and its
numbered versions; a version is immutable once released (a change is a new number, which is a new
scorer version, sidecar directory and cache key). Hardened versions treat judged text as data:

- `{field:delimited}` encloses the text between markers that carry a per-row id derived from the
  row's content (`<<<RESPONSE id=3f9a1c>>> ... <<<END RESPONSE id=3f9a1c>>>`), so text cannot
  close the block with a marker it cannot predict;
- the text is sanitised: chat-template control tokens (`<|im_start|>`, `<s>`, `[INST]`, ...) are
  defused, which matters because tokenizers turn such strings inside *data* into real role tokens,
  and `<<<` is broken up so the data cannot forge a marker;
- the system prompt says that everything between markers is data, and the task is restated after
  the data (the "sandwich").

Placeholders: `{field}` inserts the text as is, `{field:labeled}` inserts "Label: text", and
`{field:delimited}` the marked block; a line holding only a placeholder whose field is empty is
dropped. Text is inserted by plain replacement, so braces in data are harmless.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from thresher.llm.protocol import Chat, GenerationParams

LABELS = {"instruction": "INSTRUCTION", "input": "INPUT", "output": "RESPONSE", "text": "EXTRACT"}
_PLAIN_LABELS = {"instruction": "Instruction", "input": "Input", "output": "Response", "text": "Text"}
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(delimited|labeled))?\}")
# Control tokens of common chat templates (ChatML/Qwen, Llama 2/3, Mistral, Gemma, Phi).
CONTROL_TOKENS = re.compile(
    r"<\|[A-Za-z0-9_\-\s]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>|<\|?endoftext\|?>",
)


def defuse_controls(text: str) -> str:
    """Chat control tokens (`<|im_start|>`, `[INST]`, ...) made harmless; the rest of the text untouched."""
    table = str.maketrans({"<": "‹", ">": "›", "[": "(", "]": ")"})
    return CONTROL_TOKENS.sub(lambda m: m.group(0).translate(table), text)


def sanitize(text: str) -> str:
    """Defuse chat control tokens and marker openers inside judged text (hardened prompts)."""
    return defuse_controls(text).replace("<<<", "‹‹‹").replace(">>>", "›››")


def row_nonce(fields: dict[str, str]) -> str:
    digest = hashlib.blake2b(digest_size=3)
    for key in sorted(fields):
        digest.update(key.encode() + b"\x1f" + (fields[key] or "").encode() + b"\x1e")
    return digest.hexdigest()


@dataclass(frozen=True)
class ParseRule:
    kind: str  # "first_line_number" | "regex"
    pattern: str | None = None
    which: str = "first"  # "first" | "last" match


@dataclass(frozen=True)
class PromptTemplate:
    task: str
    version: int
    hardened: bool
    system: str
    user: str
    expected_prefix: str
    generate: GenerationParams
    fields: tuple[str, ...]
    scale: tuple[int, ...]
    parse: ParseRule
    first_chars: tuple[tuple[str, int], ...] = ()

    @property
    def candidates(self) -> list[str]:
        return [str(s) for s in self.scale]

    def render(self, fields: dict[str, str]) -> Chat:
        """The chat for one row; `fields` maps each of `self.fields` to its (already cut) text."""
        nonce = row_nonce(fields)
        values = {k: (sanitize(v) if self.hardened else v) for k, v in fields.items()}

        def block(name: str, form: str | None) -> str:
            value = values.get(name, "")
            if form is None:
                return value
            if not value.strip():
                return ""
            if form == "labeled":
                return f"{_PLAIN_LABELS.get(name, name.capitalize())}: {value}"
            label = LABELS.get(name, name.upper())
            return f"<<<{label} id={nonce}>>>\n{value}\n<<<END {label} id={nonce}>>>"

        lines = []
        for line in self.user.split("\n"):
            whole = _PLACEHOLDER.fullmatch(line.strip())
            if whole and not block(whole.group(1), whole.group(2)):
                continue  # a line holding only an empty field disappears
            lines.append(line)
        template = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
        # One pass over the template: inserted text is never scanned for placeholders again.
        user = _PLACEHOLDER.sub(lambda m: block(m.group(1), m.group(2)), template)
        chat: Chat = []
        if self.system.strip():
            chat.append({"role": "system", "content": self.system.strip()})
        chat.append({"role": "user", "content": user})
        return chat


def load_task(task: str) -> dict[str, Any]:
    try:
        text = resources.files("thresher.judges").joinpath("prompts", f"{task}.yaml").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no prompt file for judge task {task!r}; known: {', '.join(available_tasks())}") from None
    return yaml.safe_load(text)


def available_tasks() -> list[str]:
    folder = resources.files("thresher.judges").joinpath("prompts")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=64)
def load_template(task: str, version: int | None = None) -> PromptTemplate:
    """Version `version` of `task`'s prompt (default: the newest)."""
    spec = load_task(task)
    versions = {int(k): v for k, v in spec["versions"].items()}
    chosen = max(versions) if version is None else int(version)
    if chosen not in versions:
        raise ValueError(f"judge task {task!r} has prompt versions {sorted(versions)}, not {version}")
    v = versions[chosen]
    parse = spec.get("parse", {})
    gen = v.get("generate", {})
    return PromptTemplate(
        task=spec["task"],
        version=chosen,
        hardened=bool(v.get("hardened", False)),
        system=v.get("system", ""),
        user=v["user"],
        expected_prefix=v.get("expected_prefix", ""),
        generate=GenerationParams(max_new_tokens=int(gen.get("max_new_tokens", 64)), stop=tuple(gen.get("stop", ()))),
        fields=tuple(spec["fields"]),
        scale=tuple(int(s) for s in spec["scale"]),
        parse=ParseRule(parse.get("kind", "regex"), parse.get("pattern"), parse.get("which", "first")),
        first_chars=tuple(sorted((spec.get("first_chars") or {}).items())),
    )


def latest_version(task: str) -> int:
    return max(int(k) for k in load_task(task)["versions"])


def unhardened_version(task: str) -> int:
    """The newest version without hardening (kept to measure prompt injection)."""
    versions = load_task(task)["versions"]
    plain = [int(k) for k, v in versions.items() if not v.get("hardened", False)]
    if not plain:
        raise ValueError(f"judge task {task!r} has no unhardened prompt version")
    return max(plain)
