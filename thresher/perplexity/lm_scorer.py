"""Perplexity of each document under a Hugging Face causal language model.

Every token of a document is scored: a context token (`prefix_token`; by default the tokenizer's
BOS, else its EOS, as lm-evaluation-harness does) is put in front so that the first token has a
prediction too. Documents longer than the window (`max_length` tokens, the context token included)
are scored with a sliding window: windows start every `stride` tokens, and each window scores only
the tokens that no earlier window scored, so every token is scored exactly once and, after the
first window, with at least `max_length - stride` tokens of context. A document that fits in one
window is scored with its full context, exactly as one forward pass over it would.

Columns (natural-log negative log-likelihoods per token, float64):

- `lm_nll_mean`: mean NLL over the scored tokens; `lm_perplexity` = exp(lm_nll_mean);
- `lm_nll_std`, `lm_nll_p50`, `lm_nll_p90`: spread of the per-token NLLs (a document with a few
  garbage spans has a high p90 at an ordinary mean);
- `lm_tokens`: tokens scored; `lm_truncated`: true when the document had more than `max_tokens`
  tokens and only its first `max_tokens` were scored.

Null text gives nulls; a text with no token gives `lm_tokens` = 0 and null statistics.

Throughput: windows of all documents of a batch are sorted by length (longest first) and packed
into forward passes of at most `batch_size` windows and `max_batch_tokens` padded tokens (which
bounds the logits tensor: tokens × vocabulary × 4 bytes), right-padded with an attention mask, then
the results are put back in document order. Sorting and padding do not change the numbers beyond
floating-point noise (tests/scorers/test_lm_perplexity.py).

Devices: `device="auto"` picks CUDA when torch sees it, else CPU; `dtype="auto"` is bfloat16 on a
CUDA device that supports it (float16 otherwise) and float32 on CPU. Log-softmax is always taken
in float32.

Models: `model` is anything `thresher.models.resolve_model` accepts (a local directory, a Hugging
Face cache id, a .gguf file, or the packaged `smollm2-135m-instruct`); nothing is downloaded
unless `allow_download`. Remote code runs only with `trust_remote_code=True`. The model loads once
per process on first use (a module-level cache, guarded by a lock) and is never pickled with the
scorer; the model files' content fingerprint is a field, so a changed model changes cache keys.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from thresher.models.loaded import on_release
from thresher.scorers.base import ScorerBase

_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("lm_perplexity", pa.float64()),
        pa.field("lm_nll_mean", pa.float64()),
        pa.field("lm_nll_std", pa.float64()),
        pa.field("lm_nll_p50", pa.float64()),
        pa.field("lm_nll_p90", pa.float64()),
        pa.field("lm_tokens", pa.int64()),
        pa.field("lm_truncated", pa.bool_()),
    ]
)

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_MAX_LENGTH = 1024
# A token covers at most this many characters in practice (long words, whitespace runs): texts are
# cut to max_tokens * this before tokenising, so a 2 MB page is not tokenised to score 4k tokens.
_CHARS_PER_TOKEN_BOUND = 32


def sliding_windows(n: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, score_from) windows over a sequence of `n` tokens whose first is context only.

    Window k covers positions [start, end) with start = k * stride; it scores the targets
    [score_from, end) that no earlier window scored. Together the windows score every position
    1..n-1 exactly once.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    if not 1 <= stride < max_length:
        raise ValueError(f"stride must be in [1, max_length), got {stride} with max_length {max_length}")
    windows: list[tuple[int, int, int]] = []
    scored_to, start = 1, 0
    while scored_to < n:
        end = min(start + max_length, n)
        if end > scored_to:
            windows.append((start, end, max(scored_to, start + 1)))
            scored_to = end
        start += stride
    return windows


class _Runtime:
    """A loaded model + tokenizer on one device (per process, see `_runtime`)."""

    def __init__(self, path: str, device: str, dtype: str, trust_remote_code: bool, prefix_token: str | None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
        self.tokenizer.model_max_length = 1 << 60  # we window ourselves; silence the length warning
        self.model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, local_files_only=True, dtype=self.dtype
        ).to(self.device)
        self.model.eval()
        config = self.model.config
        self.context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        tokenizer = self.tokenizer
        if prefix_token is not None:
            prefix_id = tokenizer.convert_tokens_to_ids(prefix_token)
            if prefix_id is None or (prefix_id == tokenizer.unk_token_id and prefix_token != tokenizer.unk_token):
                raise ValueError(f"prefix_token {prefix_token!r} is not a token of {path}")
        else:
            prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix_id is None:
            raise ValueError(f"{path}: the tokenizer has neither BOS nor EOS; pass prefix_token")
        self.prefix_id = int(prefix_id)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.prefix_id
        self.pad_id = int(pad)

    def window_nll(self, windows: list[list[int]], score_from: list[int]) -> list[np.ndarray]:
        """Per window, the NLL of its tokens [score_from, len) given the tokens before them."""
        torch = self.torch
        longest = max(map(len, windows))
        ids = torch.full((len(windows), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), longest), dtype=torch.long)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
            mask[row, : len(window)] = 1
        with torch.inference_mode():
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False
            ).logits
            targets = ids.to(self.device)
            out = []
            for row, window in enumerate(windows):
                first, last = score_from[row], len(window)
                nll = torch.nn.functional.cross_entropy(
                    logits[row, first - 1 : last - 1].float(), targets[row, first:last], reduction="none"
                )
                out.append(nll.double().cpu().numpy())
        return out


_lock = threading.Lock()
_runtimes: dict[tuple, _Runtime] = {}


@on_release
def _forget_runtimes() -> None:
    with _lock:
        _runtimes.clear()
# (reference, allow_download, fingerprint) -> local directory, once per process; the fingerprint
# keeps a model replaced at the same path (or a re-exported GGUF) from being served stale.
_resolved: dict[tuple[str, bool, str | None], str] = {}


def _resolve(model: str, allow_download: bool, fingerprint: str | None) -> str:
    key = (model, allow_download, fingerprint)
    path = _resolved.get(key)
    if path is None:
        from thresher.models.resolve import resolve_model

        path = _resolved[key] = str(resolve_model(model, allow_download=allow_download))
    return path


def _pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_dtype(dtype: str, device: str) -> str:
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def _locate_fingerprint(model: str) -> str | None:
    try:
        from thresher.models.resolve import locate_model

        return locate_model(model, allow_download=False).fingerprint()
    except Exception:  # not resolvable here (yet): scoring will raise the real error
        return None


@dataclass(frozen=True)
class CausalLMPerplexityScorer(ScorerBase):
    """Token-level NLL and perplexity of each document under a causal LM (see the module doc)."""

    name: ClassVar[str] = "lm_perplexity"
    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = tuple(_SCHEMA.names[1:])
    perplexity_column: ClassVar[str] = "lm_perplexity"

    model: str = DEFAULT_MODEL
    """Local directory, Hugging Face cache id, .gguf file, or packaged name."""
    max_length: int | None = None
    """Window length in tokens, context token included (default: min(model context, 1024))."""
    stride: int | None = None
    """Tokens between window starts (default: max_length // 2)."""
    max_tokens: int | None = 4096
    """Score at most this many tokens per document (None: all; lm_truncated records a cut)."""
    batch_size: int = 8
    """Windows per forward pass at most."""
    max_batch_tokens: int = 8192
    """Padded tokens per forward pass at most (bounds the logits tensor)."""
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    prefix_token: str | None = None
    """Context token put before each document (default: BOS, else EOS)."""
    trust_remote_code: bool = False
    allow_download: bool = False
    model_fingerprint: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_batch_tokens < 2:
            raise ValueError("batch_size must be >= 1 and max_batch_tokens >= 2")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {self.max_tokens}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.stride is not None and self.max_length is not None and not 1 <= self.stride < self.max_length:
            raise ValueError(f"stride must be in [1, max_length), got {self.stride}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        object.__setattr__(self, "model_fingerprint", _locate_fingerprint(self.model))

    @property
    def output_schema(self) -> pa.Schema:
        return _SCHEMA

    def prepare(self) -> None:
        # Resolving converts a GGUF model, once: in the driver, before workers would each do it.
        _resolve(self.model, self.allow_download, self.model_fingerprint)

    def runtime(self) -> _Runtime:
        """The loaded model for this scorer's settings (loaded on first use, once per process)."""
        device = _pick_device(self.device)
        dtype = _pick_dtype(self.dtype, device)
        path = _resolve(self.model, self.allow_download, self.model_fingerprint)
        key = (path, self.model_fingerprint, device, dtype, self.trust_remote_code, self.prefix_token)
        with _lock:
            runtime = _runtimes.get(key)
            if runtime is None:
                runtime = _Runtime(path, device, dtype, self.trust_remote_code, self.prefix_token)
                _runtimes[key] = runtime
            return runtime

    def _window_shape(self, runtime: _Runtime) -> tuple[int, int]:
        max_length = self.max_length or min(runtime.context or DEFAULT_MAX_LENGTH, DEFAULT_MAX_LENGTH)
        if runtime.context:
            max_length = min(max_length, runtime.context)
        stride = self.stride or max(1, max_length // 2)
        if not 1 <= stride < max_length:
            raise ValueError(f"stride {stride} must be in [1, {max_length})")
        return max_length, stride

    def tokenize(self, runtime: _Runtime, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids of each text (no special tokens), cut to max_tokens, and whether each was cut."""
        limit = self.max_tokens
        cut_texts = texts if limit is None else [t[: limit * _CHARS_PER_TOKEN_BOUND] for t in texts]
        encoded = runtime.tokenizer(cut_texts, add_special_tokens=False)["input_ids"] if texts else []
        ids, truncated = [], []
        for text, cut, tokens in zip(texts, cut_texts, encoded):
            over = limit is not None and (len(tokens) > limit or len(cut) < len(text))
            ids.append(tokens[:limit] if limit is not None else tokens)
            truncated.append(over)
        return ids, truncated

    def token_nll(self, texts: list[str]) -> tuple[list[np.ndarray], list[bool]]:
        """Per text, the NLL (nats) of each of its scored tokens, and whether it was truncated."""
        runtime = self.runtime()
        max_length, stride = self._window_shape(runtime)
        ids, truncated = self.tokenize(runtime, texts)
        windows: list[tuple[int, list[int], int]] = []  # (document, token ids, score_from)
        for doc, tokens in enumerate(ids):
            sequence = [runtime.prefix_id, *tokens]
            for start, end, score_from in sliding_windows(len(sequence), max_length, stride):
                windows.append((doc, sequence[start:end], score_from - start))
        # longest first, so each forward pass pads little; ties keep document order
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        results: list[np.ndarray | None] = [None] * len(windows)
        position = 0
        while position < len(order):
            longest = len(windows[order[position]][1])
            rows = max(1, min(self.batch_size, self.max_batch_tokens // longest))
            group = order[position : position + rows]
            nlls = runtime.window_nll([windows[w][1] for w in group], [windows[w][2] for w in group])
            for w, nll in zip(group, nlls):
                results[w] = nll
            position += len(group)
        per_doc: list[list[np.ndarray]] = [[] for _ in texts]
        for (doc, _, _), nll in zip(windows, results):
            per_doc[doc].append(nll)  # windows of a document were appended in order
        empty = np.zeros(0, dtype=np.float64)
        return [np.concatenate(parts) if parts else empty for parts in per_doc], truncated

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        texts = batch.column("text").to_pylist()
        present = [i for i, t in enumerate(texts) if t is not None]
        nlls, truncated = self.token_nll([texts[i] for i in present]) if present else ([], [])
        columns: dict[str, list[Any]] = {name: [None] * len(texts) for name in _SCHEMA.names[1:]}
        for i, nll, cut in zip(present, nlls, truncated):
            columns["lm_tokens"][i] = int(nll.size)
            columns["lm_truncated"][i] = cut
            if nll.size:
                mean = float(nll.mean())
                columns["lm_nll_mean"][i] = mean
                columns["lm_perplexity"][i] = float(np.exp(mean))
                columns["lm_nll_std"][i] = float(nll.std())
                p50, p90 = np.percentile(nll, [50, 90])
                columns["lm_nll_p50"][i] = float(p50)
                columns["lm_nll_p90"][i] = float(p90)
        arrays = [batch.column("doc_id")] + [
            pa.array(columns[f.name], f.type) for f in _SCHEMA if f.name != "doc_id"
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)
