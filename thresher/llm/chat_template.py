"""Render a model's own chat template without transformers (for llama.cpp, which reads GGUF).

A GGUF file carries its Jinja chat template in `tokenizer.chat_template`; rendering it in a
sandboxed Jinja environment with the same globals transformers provides (`raise_exception`,
`bos_token`, `eos_token`, `add_generation_prompt`) gives the prompt transformers'
`apply_chat_template` gives (tests/llm compare the two on the packaged Qwen template).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from thresher.llm.protocol import Chat


@lru_cache(maxsize=8)
def _compiled(template: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
        import json

        return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render_chat_template(
    template: str, chat: Chat, *, bos_token: str = "", eos_token: str = "", add_generation_prompt: bool = True
) -> str:
    return _compiled(template).render(
        messages=chat, bos_token=bos_token, eos_token=eos_token, add_generation_prompt=add_generation_prompt
    )
