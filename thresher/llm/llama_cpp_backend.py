"""llama.cpp in-process backend (optional: `pip install llama-cpp-python`, a 15-25 minute compile
on this machine, so it is not a dependency). Reads GGUF directly: packaged names, split packages
(assembled once) and `.gguf` paths all work; nothing is converted.

Capabilities: GENERATE (`create_chat_completion`), NEXT_TOKEN_LOGPROBS (the prompt is rendered
with the GGUF's own chat template, evaluated, and the last position's logits read; a prompt that
shares a token prefix with the previous one re-uses the evaluated prefix, which is what a judge's
fixed rubric gives), TOKENIZE, and SCORE only with `logits_all=True` (llama.cpp then keeps the
logits of every position: n_ctx x vocabulary floats, 2.5 GB for Qwen at 4,096 tokens).
One context evaluates one sequence at a time; run one backend per worker process to scale.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from thresher.llm.protocol import (
    CandidateLogprobs,
    Capability,
    CapabilityError,
    Chat,
    ContinuationScore,
    Generation,
    GenerationParams,
    LazyModelState,
    LMError,
    trim_at_stop,
    validate_chat,
)

INSTALL_HINT = "the llama.cpp backend needs llama-cpp-python: pip install llama-cpp-python (compiles llama.cpp)"


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppBackend(LazyModelState):
    kind = "llama_cpp"

    _transient = ("_llm",)

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        logits_all: bool = False,
        seed: int = 0,
    ):
        if not llama_cpp_available():
            raise LMError(INSTALL_HINT)
        self.model_ref = str(model)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.logits_all = logits_all
        self.seed = seed
        self._llm: Any = None
        self._lock = threading.RLock()
        self._path = None
        self._model_id: str | None = None

    @property
    def path(self):
        if self._path is None:
            from thresher.llm.packaged import gguf_path

            self._path = gguf_path(self.model_ref)
        return self._path

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            from thresher.storage.readers import file_fingerprint

            self._model_id = f"llama_cpp:{self.path.name}:{file_fingerprint(self.path)[:16]}"
        return self._model_id

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.GENERATE, Capability.NEXT_TOKEN_LOGPROBS, Capability.TOKENIZE}
        if self.logits_all:
            caps.add(Capability.SCORE)
        return frozenset(caps)

    @property
    def llm(self):
        if self._llm is None:
            with self._lock:
                if self._llm is None:
                    from llama_cpp import Llama

                    self._llm = Llama(
                        model_path=str(self.path),
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_gpu_layers=self.n_gpu_layers,
                        logits_all=self.logits_all,
                        seed=self.seed,
                        verbose=False,
                    )
        return self._llm

    def close(self) -> None:
        with self._lock:
            if self._llm is not None and hasattr(self._llm, "close"):
                self._llm.close()
            self._llm = None

    # -- tokens -------------------------------------------------------------------------------------

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text, special=False))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        tokens = self._tokenize(text, special=False)
        if len(tokens) <= max_tokens:
            return text, False
        kept = self.llm.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")
        return kept, True

    def render_chat(self, chat: Chat, assistant_prefix: str = "") -> str:
        from thresher.llm.chat_template import render_chat_template

        validate_chat(chat)
        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise LMError(f"{self.path.name} carries no chat template")
        bos = eos = ""
        try:
            bos = self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", errors="ignore")
            eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", errors="ignore")
        except Exception:  # noqa: BLE001 - a model without BOS/EOS still renders
            pass
        return render_chat_template(template, chat, bos_token=bos, eos_token=eos) + assistant_prefix

    def _eval_with_reuse(self, tokens: list[int]) -> None:
        """Evaluate `tokens`, keeping the longest already-evaluated prefix (at least one new token)."""
        llm = self.llm
        keep = 0
        limit = min(llm.n_tokens, len(tokens) - 1)
        while keep < limit and llm.input_ids[keep] == tokens[keep]:
            keep += 1
        llm.n_tokens = keep  # eval() drops the KV cache beyond n_tokens first
        llm.eval(tokens[keep:])

    # -- capabilities -----------------------------------------------------------------------------

    def next_token_logprobs(
        self, prompts: Sequence[Chat], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]:
        import numpy as np

        results = []
        with self._lock:
            cand_ids = []
            for cand in candidates:
                ids = {t[0] for s in (cand, " " + cand) if len(t := self._tokenize(s, special=False)) == 1}
                if not ids:
                    raise LMError(f"candidate {cand!r} is not a single token of {self.path.name}")
                cand_ids.append(sorted(ids))
            for chat in prompts:
                tokens = self._tokenize(self.render_chat(chat, assistant_prefix), special=True)
                if len(tokens) >= self.n_ctx:
                    raise LMError(f"prompt of {len(tokens)} tokens exceeds n_ctx={self.n_ctx}; truncate inputs")
                self._eval_with_reuse(tokens)
                logits = np.asarray(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float64)
                top = logits.max()
                log_z = top + math.log(float(np.exp(logits - top).sum()))
                values = {}
                for cand, ids in zip(candidates, cand_ids):
                    picked = logits[ids]
                    values[cand] = float(picked.max() + math.log(float(np.exp(picked - picked.max()).sum())) - log_z)
                results.append(CandidateLogprobs(values, prompt_tokens=len(tokens)))
        return results

    def score(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationScore]:
        import numpy as np

        if not self.logits_all:
            raise CapabilityError("llama.cpp scores continuations only with logits_all=True")
        results = []
        with self._lock:
            for prefix, cont in zip(prefixes, continuations):
                ctx = self._tokenize(prefix, special=False) if prefix else [self.llm.token_bos()]
                target = self._tokenize(cont, special=False)
                truncated = False
                if len(ctx) + len(target) > self.n_ctx:
                    ctx, truncated = ctx[len(ctx) + len(target) - self.n_ctx:], True
                self.llm.reset()
                self.llm.eval(ctx + target)
                scores = np.asarray(self.llm.scores[: len(ctx) + len(target)], dtype=np.float64)
                logps = []
                for j, tok in enumerate(target):
                    row = scores[len(ctx) + j - 1]
                    top = row.max()
                    logps.append(float(row[tok] - top - math.log(float(np.exp(row - top).sum()))))
                results.append(ContinuationScore(tuple(logps), truncated))
        return results

    def generate(self, prompts: Sequence[Chat], params: GenerationParams) -> list[Generation]:
        results = []
        with self._lock:
            for chat in prompts:
                validate_chat(chat)
                reply = self.llm.create_chat_completion(
                    messages=chat,
                    max_tokens=params.max_new_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    stop=list(params.stop) or None,
                    seed=params.seed if params.seed is not None else self.seed,
                )
                choice = reply["choices"][0]
                text, _ = trim_at_stop(choice["message"].get("content") or "", params.stop)
                usage = reply.get("usage") or {}
                results.append(Generation(
                    text,
                    "length" if choice.get("finish_reason") == "length" else "stop",
                    usage.get("prompt_tokens"),
                    usage.get("completion_tokens"),
                ))
        return results
