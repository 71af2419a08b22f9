"""The small causal LM of train-and-compare, and how it is measured.

A Llama architecture from transformers, built from `TinyLMSettings` with weights drawn from a seed
(never downloaded). Loss is the mean next-token negative log-likelihood in nats over non-overlapping
windows of `context` tokens; probes are scored as lm-evaluation-harness scores multiple choice: the
summed log-likelihood of each choice after the question (`acc`), and per byte of the choice
(`acc_norm`).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from thresher.eval.config import TinyLMSettings
from thresher.eval.tokens import Tokenizer


def build_model(settings: TinyLMSettings, vocab_size: int, eos_id: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=settings.hidden,
        intermediate_size=settings.intermediate or 4 * settings.hidden,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads, num_key_value_heads=settings.heads,
        max_position_embeddings=settings.context, tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=eos_id, pad_token_id=None, use_cache=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def autocast(device: str):
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()


def window_loss(model, windows, device: str):
    """Mean next-token cross-entropy of a (batch, context + 1) tensor of token ids."""
    import torch.nn.functional as F

    with autocast(device):
        logits = model(input_ids=windows[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


def stream_loss(model, tokens: np.ndarray, context: int, device: str, batch_size: int = 32) -> float:
    """Mean NLL (nats per token) of `tokens`, in non-overlapping windows of `context` predicted tokens."""
    import torch

    count = (tokens.size - 1) // context
    if count < 1:
        raise ValueError(f"{tokens.size} tokens: fewer than one window of {context + 1}")
    starts = np.arange(count) * context
    total, predicted = 0.0, 0
    model.eval()
    with torch.no_grad():
        for first in range(0, count, batch_size):
            rows = np.stack([tokens[s: s + context + 1] for s in starts[first: first + batch_size]])
            batch = torch.from_numpy(rows.astype(np.int64)).to(device)
            total += float(window_loss(model, batch, device)) * batch.shape[0] * context
            predicted += batch.shape[0] * context
    return total / predicted


def choice_logprob(model, context_ids: np.ndarray, choice_ids: np.ndarray, window: int, device: str) -> float:
    """Summed log-probability of `choice_ids` after `context_ids` (the context cut from the left to fit)."""
    import torch

    keep = max(window - choice_ids.size, 1)
    ids = np.concatenate([context_ids[-keep:], choice_ids])[-(window + 1):]
    batch = torch.from_numpy(ids.astype(np.int64)).unsqueeze(0).to(device)
    with torch.no_grad(), autocast(device):
        logits = model(input_ids=batch[:, :-1]).logits.float()
    logprobs = torch.log_softmax(logits[0], dim=-1)
    targets = batch[0, 1:]
    picked = logprobs[torch.arange(targets.numel()), targets]
    return float(picked[-min(choice_ids.size, picked.numel()):].sum())


def probe_accuracy(model, tokenizer: Tokenizer, items: list[dict], window: int, device: str) -> dict:
    """acc and acc_norm over items {question, choices, answer (an index)}."""
    model.eval()
    right = right_norm = 0
    for item in items:
        context = tokenizer.encode(item["question"], eos=False)
        scores, per_byte = [], []
        for choice in item["choices"]:
            text = " " + choice if not choice.startswith((" ", "\n")) else choice
            value = choice_logprob(model, context, tokenizer.encode(text, eos=False), window, device)
            scores.append(value)
            per_byte.append(value / max(len(text.encode("utf-8")), 1))
        right += int(int(np.argmax(scores)) == item["answer"])
        right_norm += int(int(np.argmax(per_byte)) == item["answer"])
    n = len(items)
    return {"items": n, "acc": right / n if n else math.nan, "acc_norm": right_norm / n if n else math.nan}
