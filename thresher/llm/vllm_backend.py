"""vLLM offline engine (optional: GPU machines with `pip install vllm`; not a dependency).

The model reference is resolved to a local Hugging Face directory exactly as for the transformers
backend (GGUF converted once); vLLM gets `enable_prefix_caching=True`, so a judge's shared rubric
is computed once per batch. Capabilities: GENERATE (`LLM.chat`), NEXT_TOKEN_LOGPROBS (one token
with `logprobs=top_logprobs`; a candidate outside the top k gets -inf), SCORE (`prompt_logprobs`),
TOKENIZE (the engine's tokenizer).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from typing import Any

from thresher.llm.protocol import (
    CandidateLogprobs,
    Capability,
    Chat,
    ContinuationScore,
    Generation,
    GenerationParams,
    LazyModelState,
    LMError,
    trim_at_stop,
    validate_chat,
)

INSTALL_HINT = "the vLLM backend needs vllm and a GPU: pip install vllm"


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


class VLLMBackend(LazyModelState):
    kind = "vllm"

    _transient = ("_llm",)

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.85,
        top_logprobs: int = 20,
        seed: int = 0,
    ):
        if not vllm_available():
            raise LMError(INSTALL_HINT)
        self.model_ref = str(model)
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.gpu_memory_utilization = gpu_memory_utilization
        self.top_logprobs = top_logprobs
        self.seed = seed
        self._llm: Any = None
        self._lock = threading.RLock()
        self._dir = None
        self._model_id: str | None = None

    @property
    def model_dir(self):
        if self._dir is None:
            from thresher.llm.packaged import resolve_llm

            self._dir = resolve_llm(self.model_ref)
        return self._dir

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            from thresher.models.resolve import locate_model

            fingerprint = locate_model(str(self.model_dir)).fingerprint()
            self._model_id = f"vllm:{self.model_dir.name}:{fingerprint[:16]}:{self.dtype}"
        return self._model_id

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(Capability)

    @property
    def llm(self):
        if self._llm is None:
            with self._lock:
                if self._llm is None:
                    from vllm import LLM

                    self._llm = LLM(
                        model=str(self.model_dir),
                        dtype=self.dtype,
                        max_model_len=self.max_model_len,
                        gpu_memory_utilization=self.gpu_memory_utilization,
                        enable_prefix_caching=True,
                        max_logprobs=max(20, self.top_logprobs),
                        seed=self.seed,
                    )
        return self._llm

    @property
    def tokenizer(self):
        return self.llm.get_tokenizer()

    def close(self) -> None:
        with self._lock:
            self._llm = None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= max_tokens:
            return text, False
        return text[: encoded["offset_mapping"][max_tokens - 1][1]], True

    def _sampling(self, **kwargs):
        from vllm import SamplingParams

        return SamplingParams(**kwargs)

    def generate(self, prompts: Sequence[Chat], params: GenerationParams) -> list[Generation]:
        for chat in prompts:
            validate_chat(chat)
        sampling = self._sampling(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop) or None,
            seed=params.seed,
        )
        outputs = self.llm.chat([list(c) for c in prompts], sampling, use_tqdm=False)
        results = []
        for out in outputs:
            completion = out.outputs[0]
            text, _ = trim_at_stop(completion.text, params.stop)
            results.append(Generation(
                text,
                "length" if completion.finish_reason == "length" else "stop",
                len(out.prompt_token_ids or []),
                len(completion.token_ids or []),
            ))
        return results

    def next_token_logprobs(
        self, prompts: Sequence[Chat], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]:
        tok = self.tokenizer
        texts = []
        for chat in prompts:
            validate_chat(chat)
            texts.append(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + assistant_prefix)
        token_prompts = [{"prompt_token_ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]
        sampling = self._sampling(max_tokens=1, temperature=0.0, logprobs=self.top_logprobs, seed=self.seed)
        outputs = self.llm.generate(token_prompts, sampling, use_tqdm=False)
        results = []
        for out, prompt in zip(outputs, token_prompts):
            values = {c: -math.inf for c in candidates}
            for entry in (out.outputs[0].logprobs or [{}])[0].values():
                token = (entry.decoded_token or "").strip()
                if token in values:
                    values[token] = float(math.log(math.exp(values[token]) + math.exp(entry.logprob)))
            results.append(CandidateLogprobs(values, prompt_tokens=len(prompt["prompt_token_ids"])))
        return results

    def score(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationScore]:
        tok = self.tokenizer
        rows = []
        for prefix, cont in zip(prefixes, continuations):
            start = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
            ctx = tok(prefix, add_special_tokens=True)["input_ids"] if prefix else start
            target = tok(cont, add_special_tokens=False)["input_ids"]
            rows.append((list(ctx), list(target)))
        sampling = self._sampling(max_tokens=1, temperature=0.0, prompt_logprobs=0, seed=self.seed)
        outputs = self.llm.generate([{"prompt_token_ids": c + t} for c, t in rows], sampling, use_tqdm=False)
        results = []
        for (ctx, target), out in zip(rows, outputs):
            logps = []
            for j, token in enumerate(target):
                entry = out.prompt_logprobs[len(ctx) + j]
                logps.append(float(entry[token].logprob))
            results.append(ContinuationScore(tuple(logps)))
        return results
