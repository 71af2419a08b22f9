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


# GGUF value types (the gguf spec): fixed sizes of the scalars, 8 = string, 9 = array.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_metadata_string(path, key: str) -> str:
    """One string of a GGUF file's metadata, read by walking the key-value section and skipping the
    other values (gguf.GGUFReader parses every field and tensor first: ~7 s on the Qwen file). A wrong
    read fails the comparison below."""
    import struct

    with open(path, "rb") as f:
        def u32():
            return struct.unpack("<I", f.read(4))[0]

        def u64():
            return struct.unpack("<Q", f.read(8))[0]

        def string():
            return f.read(u64())

        def skip(kind):
            if kind == 8:
                f.seek(u64(), 1)
            elif kind == 9:
                inner, count = u32(), u64()
                if inner in _SCALAR_SIZES:
                    f.seek(_SCALAR_SIZES[inner] * count, 1)
                else:
                    for _ in range(count):
                        skip(inner)
            else:
                f.seek(_SCALAR_SIZES[kind], 1)

        assert f.read(4) == b"GGUF" and u32() >= 2
        _tensors, pairs = u64(), u64()
        for _ in range(pairs):
            name, kind = string().decode(), u32()
            if name == key:
                assert kind == 8, f"{key} is not a string"
                return string().decode()
            skip(kind)
    raise KeyError(key)


@pytest.mark.parametrize("name", [QWEN, SMOLLM2])
def test_gguf_template_renders_like_transformers(name):
    require_packaged(name)
    from transformers import AutoTokenizer

    from thresher.llm.packaged import gguf_path, resolve_llm

    template = gguf_metadata_string(gguf_path(name), "tokenizer.chat_template")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_llm(name)))
    for chat in CHATS:
        expected = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert render_chat_template(template, chat, bos_token=tokenizer.bos_token or "",
                                    eos_token=tokenizer.eos_token or "") == expected

