"""Local Hugging Face transformers backend (CPU or CUDA), every capability.

The model is a reference that `thresher.llm.packaged.resolve_llm` turns into a local directory
(packaged names such as `qwen2.5-coder-0.5b-instruct`, a `save_pretrained` directory, a `.gguf`
file converted once, or a Hugging Face cache id); nothing is downloaded. Weights load lazily on
first use, once per backend object, behind a lock (Prefect may call from several threads).

Devices and dtypes (`device="auto"`, `dtype="auto"`): CUDA when available, in bfloat16 (float16
on GPUs without bf16); on CPU, bfloat16 when the CPU has native bf16 instructions (AVX512-BF16 or
AMX, read from /proc/cpuinfo) and float32 otherwise. On this project's 2-core AMD EPYC a bf16
forward pass of Qwen2.5-0.5B is ~2x faster than float32 (bench/judge_modes.py prints both).

Batching keeps the device busy with little padding: prompts are sorted by token length and cut
into batches of at most `max_batch_size` rows and `max_batch_tokens` padded tokens.

Prefix caching (`prefix_cache=True`): judge prompts share a long head (system prompt, rubric). For
`next_token_logprobs`, the longest token prefix shared by all prompts of a call is run once, its
key/value cache is copied into each batch, and only the differing tails are computed. Because the
shared prefix is taken from the tokenisation of the *whole* prompts, results equal those of the
uncached forward pass up to float rounding (tests/llm check this).
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import threading
from collections.abc import Sequence
from pathlib import Path
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

_ALL = frozenset(Capability)
# A shared prefix shorter than this is not worth a separate forward pass.
_MIN_SHARED_PREFIX = 16


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bfloat16 matrix products natively (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def pick_device_and_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """Resolve "auto" choices without loading a model: ("cuda"|"cpu"|..., "bfloat16"|"float16"|"float32")."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LMError("device 'cuda' requested but torch sees no CUDA device (is this the CPU build of torch?)")
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        elif device == "cpu":
            dtype = "bfloat16" if cpu_has_native_bf16() else "float32"
        else:
            dtype = "float32"
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, got {dtype!r}")
    return device, dtype


class TransformersBackend(LazyModelState):
    """`LMBackend` over a local causal LM (see the module doc)."""

    kind = "transformers"

    _transient = ("_model", "_tokenizer", "_shared")

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 8,
        max_batch_tokens: int = 4096,
        max_context: int | None = None,
        prefix_cache: bool = True,
        cache_dir: str | None = None,
    ):
        if max_batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("max_batch_size and max_batch_tokens must be positive")
        self.model_ref = str(model)
        self.device, self.dtype = pick_device_and_dtype(device, dtype)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self._max_context = max_context
        self.prefix_cache = prefix_cache
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._model_dir: Path | None = None
        self._model_id: str | None = None
        self._shared: tuple[tuple[int, ...], Any] | None = None  # (prefix tokens, its KV cache)
        self.stats = {"forward_rows": 0, "forward_tokens": 0, "prefix_tokens_reused": 0, "generate_rows": 0}

    # -- identity and lazy loading ------------------------------------------------------------

    def __repr__(self) -> str:
        return f"TransformersBackend({self.model_ref!r}, device={self.device!r}, dtype={self.dtype!r})"

    @property
    def model_dir(self) -> Path:
        if self._model_dir is None:
            from thresher.llm.packaged import resolve_llm

            self._model_dir = resolve_llm(self.model_ref, cache_dir=self._cache_dir)
        return self._model_dir

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            from thresher.models.resolve import locate_model

            fingerprint = locate_model(str(self.model_dir)).fingerprint()
            self._model_id = f"transformers:{self.model_dir.name}:{fingerprint[:16]}:{self.dtype}"
        return self._model_id

    @property
    def capabilities(self) -> frozenset[Capability]:
        return _ALL

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load_model()
        return self._model

    def _load_model(self):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(self.model_dir), local_files_only=True, dtype=getattr(torch, self.dtype)
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        model.to(self.device)
        model.eval()
        # Greedy decoding is requested per call; drop sampling defaults so generate() does not warn.
        for attr in ("temperature", "top_p", "top_k"):
            if hasattr(model.generation_config, attr):
                setattr(model.generation_config, attr, None)
        return model

    @property
    def max_context(self) -> int:
        if self._max_context is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(self.model_dir), local_files_only=True)
            self._max_context = int(getattr(config, "max_position_embeddings", 2048) or 2048)
        return self._max_context

    @functools.cached_property
    def _cache_kwarg(self) -> str:
        """The forward argument that takes a KV cache: transformers 5.x renamed `past_key_values` to
        `cache`, and the old name prints a deprecation warning on every call."""
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    @functools.cached_property
    def _accepts_logits_to_keep(self) -> bool:
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def close(self) -> None:
        with self._lock:
            self._model = None
            self._shared = None
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:  # pragma: no cover
                pass

    # -- tokenisation --------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= max_tokens:
            return text, False
        end = encoded["offset_mapping"][max_tokens - 1][1]
        return text[:end], True

    def render_chat(self, chat: Chat, assistant_prefix: str = "") -> str:
        """The prompt text the model sees: the chat template with the generation prompt, then any
        prefilled start of the assistant's reply."""
        validate_chat(chat)
        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        else:  # a base model: a plain transcript
            text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in chat) + "Assistant:"
            if assistant_prefix and not assistant_prefix.startswith(" "):
                assistant_prefix = " " + assistant_prefix
        return text + assistant_prefix

    def _encode_prompt(self, text: str) -> list[int]:
        # The chat template already holds any BOS the model wants.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def _pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0  # pragma: no cover

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped by similar length under the row and padded-token budgets."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            longest = max(lengths[i], max((lengths[j] for j in current), default=0))
            full = len(current) + 1 > self.max_batch_size or longest * (len(current) + 1) > self.max_batch_tokens
            if current and full:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    # -- next-token log-probabilities ------------------------------------------------------------

    def candidate_token_ids(self, candidates: Sequence[str]) -> list[list[int]]:
        """For each candidate, the single tokens that spell it (with or without a leading space).

        Raises when a candidate has no single-token spelling or two candidates share a token
        (e.g. "1" and "10" for a tokenizer that splits digits), which would make their
        probabilities inseparable."""
        tok = self.tokenizer
        owner: dict[int, str] = {}
        result: list[list[int]] = []
        for cand in candidates:
            ids: set[int] = set()
            for spelling in (cand, " " + cand):
                encoded = tok(spelling, add_special_tokens=False)["input_ids"]
                if len(encoded) == 1:
                    ids.add(int(encoded[0]))
            if not ids:
                raise LMError(f"candidate {cand!r} is not a single token of {self.model_ref}")
            for i in ids:
                if owner.setdefault(i, cand) != cand:
                    raise LMError(f"candidates {owner[i]!r} and {cand!r} share token {i}")
            result.append(sorted(ids))
        return result

    def next_token_logprobs(
        self, prompts: Sequence[Chat], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> list[CandidateLogprobs]:
        import torch

        if not prompts:
            return []
        cand_ids = self.candidate_token_ids(candidates)
        encoded = [self._encode_prompt(self.render_chat(chat, assistant_prefix)) for chat in prompts]
        too_long = [i for i, ids in enumerate(encoded) if len(ids) > self.max_context]
        if too_long:
            raise LMError(f"{len(too_long)} prompt(s) exceed the context of {self.max_context} tokens; truncate inputs")
        results: list[CandidateLogprobs | None] = [None] * len(encoded)
        with self._lock, torch.inference_mode():
            prefix_len, prefix_kv = self._shared_prefix(encoded) if self.prefix_cache else (0, None)
            tails = [ids[prefix_len:] for ids in encoded]
            for batch in self._batches([len(t) for t in tails]):
                last = self._last_logprobs([tails[i] for i in batch], prefix_len, prefix_kv)
                for row, i in enumerate(batch):
                    values = {}
                    for cand, ids in zip(candidates, cand_ids):
                        values[cand] = float(torch.logsumexp(last[row, ids], dim=0))
                    results[i] = CandidateLogprobs(values, prompt_tokens=len(encoded[i]))
        return results  # type: ignore[return-value]

    def _shared_prefix(self, encoded: list[list[int]]) -> tuple[int, Any]:
        """(length, KV cache) of the longest token prefix shared by every prompt of the call (at
        least one token of each prompt is left to compute), reusing the last cache when it matches.
        A single prompt shares what it has in common with the cached prefix, if anything."""
        limit = min(len(ids) for ids in encoded) - 1
        if len(encoded) > 1:
            reference, others = encoded[0], encoded[1:]
        elif self._shared is not None:
            reference, others = list(self._shared[0]), encoded
        else:
            return 0, None
        common = min(limit, len(reference))
        for ids in others:
            n = 0
            while n < common and ids[n] == reference[n]:
                n += 1
            common = n
        if common < _MIN_SHARED_PREFIX:
            return 0, None
        prefix = tuple(reference[:common])
        if self._shared is not None and self._shared[0] == prefix:
            return common, self._shared[1]
        import torch

        ids = torch.tensor([prefix], device=self.device)
        split = self._split_head
        if split is not None:  # the body alone: the prefix's logits are never needed
            out = split[0](input_ids=ids, use_cache=True)
        else:
            out = self.model(input_ids=ids, use_cache=True, **self._keep_kwargs(1))
        cache = _returned_cache(out)
        self._shared = (prefix, cache)
        self.stats["forward_tokens"] += common
        return common, cache

    def _keep_kwargs(self, n: int) -> dict:
        return {"logits_to_keep": n} if self._accepts_logits_to_keep else {}

    @functools.cached_property
    def _split_head(self):
        """(decoder, weight, bias) to run the body and the output layer separately, or None.

        Running them apart lets a call project only the positions it needs, and in float32: in
        bf16 a logit near 20 moves in steps of 0.125 (8 mantissa bits), coarse enough to make the
        score distributions of different inputs collide. The output layer's weights are kept in
        float32 once (545 MB for Qwen2.5-0.5B's 151,936 x 896 head). None, and the plain forward
        pass is used, for models whose logits are not a linear map of the decoder's last hidden
        state (logit soft-capping or scaling)."""
        import torch

        config = self.model.config
        if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
            return None
        get_decoder = getattr(self.model, "get_decoder", None)
        decoder = get_decoder() if callable(get_decoder) else None
        head = self.model.get_output_embeddings()
        if decoder is None or decoder is self.model or not isinstance(head, torch.nn.Linear):
            return None
        weight = head.weight.detach().float()
        bias = head.bias.detach().float() if head.bias is not None else None
        return decoder, weight, bias

    def _forward_logits(self, positions_fn, **kwargs):
        """Run the model and return a function row -> float32 logits at `positions_fn(row)` (a slice
        of the sequence axis), computing the output layer only there."""
        import torch

        split = self._split_head
        if split is None:
            out = self.model(**kwargs)
            return lambda row: out.logits[row, positions_fn(row), :].float()
        decoder, weight, bias = split
        hidden = decoder(**kwargs).last_hidden_state
        return lambda row: torch.nn.functional.linear(hidden[row, positions_fn(row), :].float(), weight, bias)

    def _last_logprobs(self, tails: list[list[int]], prefix_len: int, prefix_kv: Any):
        """log-softmax of the next-token logits after each (prefix + tail), as float32 [B, vocab]."""
        import torch

        batch, width = len(tails), max(len(t) for t in tails)
        input_ids = torch.full((batch, width), self._pad_id, dtype=torch.long)
        tail_mask = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.full((batch, width), prefix_len, dtype=torch.long)
        for row, tail in enumerate(tails):
            pad = width - len(tail)  # left padding: every row's last token is in the last column
            input_ids[row, pad:] = torch.tensor(tail)
            tail_mask[row, pad:] = 1
            positions[row, pad:] = torch.arange(prefix_len, prefix_len + len(tail))
        kwargs: dict[str, Any] = {"use_cache": prefix_kv is not None}
        mask = tail_mask
        if prefix_kv is not None:
            mask = torch.cat([torch.ones((batch, prefix_len), dtype=torch.long), tail_mask], dim=1)
            cache = copy.deepcopy(prefix_kv)
            cache.batch_repeat_interleave(batch)
            kwargs[self._cache_kwarg] = cache
            self.stats["prefix_tokens_reused"] += prefix_len * batch
        logits_at = self._forward_logits(
            lambda row, width=width: slice(width - 1, width),
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            **kwargs,
        )
        self.stats["forward_rows"] += batch
        self.stats["forward_tokens"] += int(tail_mask.sum())
        last = torch.cat([logits_at(row) for row in range(batch)], dim=0)
        return torch.log_softmax(last, dim=-1).cpu()

    # -- continuation scoring ---------------------------------------------------------------------

    def _context_token(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.bos_token_id, tok.eos_token_id):
            if candidate is not None:
                return int(candidate)
        raise LMError(f"{self.model_ref} has neither a BOS nor an EOS token to condition an empty prefix on")

    def score(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationScore]:
        import torch

        if len(prefixes) != len(continuations):
            raise ValueError(f"{len(prefixes)} prefixes for {len(continuations)} continuations")
        tok = self.tokenizer
        rows: list[tuple[list[int], list[int], bool]] = []
        for prefix, cont in zip(prefixes, continuations):
            # Whitespace at the end of the prefix belongs to the continuation's first token.
            stripped = prefix.rstrip(" ")
            cont = prefix[len(stripped):] + cont
            ctx = tok(stripped, add_special_tokens=True)["input_ids"] if stripped else []
            if not ctx:
                ctx = [self._context_token()]
            target = tok(cont, add_special_tokens=False)["input_ids"]
            truncated = False
            room = self.max_context - 1
            if len(target) > room:
                target, truncated = target[:room], True
            if len(ctx) + len(target) > self.max_context:
                ctx, truncated = ctx[len(ctx) + len(target) - self.max_context:], True
            rows.append((list(ctx), list(target), truncated))
        results: list[ContinuationScore | None] = [None] * len(rows)
        with self._lock, torch.inference_mode():
            for i, (_, target, truncated) in enumerate(rows):
                if not target:
                    results[i] = ContinuationScore((), truncated)
            todo = [i for i in range(len(rows)) if results[i] is None]
            lengths = [len(rows[i][0]) + len(rows[i][1]) for i in todo]
            for batch in self._batches(lengths):
                idx = [todo[b] for b in batch]
                seqs = [rows[i][0] + rows[i][1] for i in idx]
                width = max(len(s) for s in seqs)
                input_ids = torch.full((len(idx), width), self._pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                positions = torch.zeros((len(idx), width), dtype=torch.long)
                for row, seq in enumerate(seqs):
                    pad = width - len(seq)
                    input_ids[row, pad:] = torch.tensor(seq)
                    mask[row, pad:] = 1
                    positions[row, pad:] = torch.arange(len(seq))
                ends = {row: len(rows[i][1]) for row, i in enumerate(idx)}
                # Logits at position p predict token p+1: a row's n answer tokens are predicted by
                # positions width-1-n .. width-2 (every row is right-aligned by left padding).
                logits_at = self._forward_logits(
                    lambda row, width=width, ends=ends: slice(width - 1 - ends[row], width - 1),
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    use_cache=False,
                )
                self.stats["forward_rows"] += len(idx)
                self.stats["forward_tokens"] += int(mask.sum())
                for row, i in enumerate(idx):
                    target = rows[i][1]
                    row_logits = logits_at(row)
                    logp = torch.log_softmax(row_logits, dim=-1)
                    picked = logp.gather(1, torch.tensor(target, device=logp.device).unsqueeze(1)).squeeze(1)
                    results[i] = ContinuationScore(tuple(float(x) for x in picked.cpu()), rows[i][2])
        return results  # type: ignore[return-value]

    # -- generation ---------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Chat], params: GenerationParams) -> list[Generation]:
        import torch

        if not prompts:
            return []
        encoded = [self._encode_prompt(self.render_chat(chat)) for chat in prompts]
        room = self.max_context - params.max_new_tokens
        too_long = [i for i, ids in enumerate(encoded) if len(ids) > room]
        if too_long:
            raise LMError(
                f"{len(too_long)} prompt(s) leave no room for {params.max_new_tokens} new tokens "
                f"in the context of {self.max_context}; truncate inputs"
            )
        results: list[Generation | None] = [None] * len(encoded)
        eos = self._stop_token_ids()
        with self._lock, torch.inference_mode():
            lengths = [len(ids) + params.max_new_tokens for ids in encoded]
            for batch in self._batches(lengths):
                width = max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids = encoded[i]
                    input_ids[row, width - len(ids):] = torch.tensor(ids)
                    mask[row, width - len(ids):] = 1
                kwargs: dict[str, Any] = dict(
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=self._pad_id,
                    eos_token_id=eos or None,
                )
                if params.temperature > 0:
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
                else:
                    kwargs.update(do_sample=False)
                if params.stop:
                    kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
                out = self.model.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
                )
                self.stats["generate_rows"] += len(batch)
                self.stats["forward_tokens"] += int(mask.sum())
                for row, i in enumerate(batch):
                    new = out[row, width:].tolist()
                    ended = False
                    kept: list[int] = []
                    for t in new:
                        if t in eos:
                            ended = True
                            break
                        if t == self._pad_id and t not in eos:
                            break
                        kept.append(t)
                    text = self.tokenizer.decode(kept, skip_special_tokens=True)
                    text, stopped = trim_at_stop(text, params.stop)
                    finish = "stop" if ended or stopped or len(kept) < params.max_new_tokens else "length"
                    results[i] = Generation(text, finish, len(encoded[i]), len(kept))
        return results  # type: ignore[return-value]

    def _stop_token_ids(self) -> list[int]:
        ids: set[int] = set()
        config_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(config_eos, int):
            ids.add(config_eos)
        elif config_eos:
            ids.update(int(x) for x in config_eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)


def _returned_cache(output: Any) -> Any:
    """The KV cache a forward pass returned, under its transformers 5.x name or the older one."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def mean_nll(scores: Sequence[ContinuationScore]) -> list[float]:
    return [s.mean_nll if s.n_tokens else math.nan for s in scores]
