"""The GGUF chat-template renderer (what the llama.cpp backend uses) against transformers'
`apply_chat_template`, on the templates the packaged models carry."""

from __future__ import annotations

import pytest

from tests.lm_models import QWEN, SMOLLM2, require_packaged
from thresher.llm.chat_template import render_chat_template

CHATS = [
    [{"role": "system", "content": "You grade answers."}, {"role": "user", "content": "Rate: 2+2=4"}],
    [{"role": "user", "content": "Hello {name}, <b>bold</b> \"quotes\" and\nnewlines"}],
    [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}],
]


def gguf_template(path) -> str:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return reader.fields["tokenizer.chat_template"].contents()


@pytest.mark.parametrize("name", [QWEN, SMOLLM2])
def test_gguf_template_renders_like_transformers(name):
    require_packaged(name)
    from transformers import AutoTokenizer

    from thresher.llm.packaged import gguf_path, resolve_llm

    template = gguf_template(gguf_path(name))
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_llm(name)))
    for chat in CHATS:
        expected = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert render_chat_template(template, chat, bos_token=tokenizer.bos_token or "",
                                    eos_token=tokenizer.eos_token or "") == expected
