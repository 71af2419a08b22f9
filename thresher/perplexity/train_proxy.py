"""Train a small GPT-2-style proxy language model and its BPE tokenizer from scratch.

`train_proxy(texts_or_files, out_dir)` trains, on the reference text only:

1. a byte-level BPE tokenizer (`tokenizers`; GPT-2's byte alphabet, so no text is out of
   vocabulary; one special token `<|endoftext|>`, used as BOS, EOS, padding and unknown);
2. a GPT-2 model (`transformers.GPT2LMHeadModel`) on the token stream of all documents, each
   followed by `<|endoftext|>`, in random windows of `block_size` tokens drawn with `seed`:
   AdamW, linear warm-up then cosine decay to a tenth of the peak rate, gradient clipping at 1.0;

and saves both with `save_pretrained`, so `CausalLMPerplexityScorer(model=str(out_dir))` loads it
as any Hugging Face directory. `<out_dir>/thresher_proxy.json` records the configuration, the seed,
the corpus statistics, the loss curve and the time taken.

This is the "proxy model" of perplexity-based data selection (a small model trained on the
reference data whose perplexity ranks candidate text): cheap enough to train on CPU in minutes at
the default size (4 layers, 256 wide, ~3M parameters with an 8k vocabulary) and in seconds at the
test size. Reference text is held in memory (it is a reference set, not the corpus).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from thresher.perplexity.reference_corpus import CorpusStats, texts_from

__all__ = ["train_proxy"]

log = logging.getLogger(__name__)

SPECIAL_TOKEN = "<|endoftext|>"


def _train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[SPECIAL_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SPECIAL_TOKEN,
        eos_token=SPECIAL_TOKEN,
        unk_token=SPECIAL_TOKEN,
        pad_token=SPECIAL_TOKEN,
    )


def train_proxy(
    texts_or_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    steps: int = 1000,
    vocab_size: int = 8192,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 256,
    block_size: int = 256,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    warmup_steps: int | None = None,
    weight_decay: float = 0.01,
    seed: int = 0,
    threads: int | None = None,
    format: str = "auto",
    text_field: str | None = None,
    log_every: int = 50,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train a GPT-2-style proxy LM + BPE tokenizer on reference text; returns `out_dir`.

    texts_or_files: `str` items are document texts, `os.PathLike` items are files, globs or
    directories (see `thresher.perplexity.reference_corpus`). The result is deterministic for a given seed,
    corpus and thread count. `progress(step, loss)` is called after every step (for a UI).
    """
    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if steps < 1 or batch_size < 1 or block_size < 8:
        raise ValueError("steps and batch_size must be >= 1 and block_size >= 8")
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    started = time.perf_counter()
    stats = CorpusStats()
    texts = [t for t in texts_from(texts_or_files, format=format, text_field=text_field, stats=stats)
             if t and t.strip()]
    if not texts:
        raise ValueError("no training text: every input document was empty")

    tokenizer = _train_tokenizer(texts, vocab_size)
    eos = tokenizer.convert_tokens_to_ids(SPECIAL_TOKEN)
    stream = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    data = torch.tensor(np.asarray(stream, dtype=np.int64))
    if data.numel() < block_size + 2:
        raise ValueError(f"the reference text has {data.numel()} tokens, fewer than block_size + 2 ({block_size + 2})")

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=block_size,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
        )
        model = GPT2LMHeadModel(config)
        model.train()
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=learning_rate, betas=(0.9, 0.95),
        )
        warmup = warmup_steps if warmup_steps is not None else max(1, steps // 20)

        def rate(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, steps - warmup)
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        offsets_range = data.numel() - block_size
        curve = []
        for step in range(steps):
            starts = torch.randint(0, offsets_range + 1, (batch_size,), generator=generator)
            batch = torch.stack([data[s : s + block_size] for s in starts.tolist()])
            # the model shifts the labels itself: position t predicts token t + 1
            loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if progress is not None:
                progress(step + 1, loss.item())
            if step % log_every == 0 or step == steps - 1:
                curve.append({"step": step, "loss": round(loss.item(), 4)})
                log.info("proxy step %d/%d loss %.3f", step + 1, steps, curve[-1]["loss"])
    finally:
        torch.set_num_threads(previous_threads)

    model.eval()
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    metadata = {
        "architecture": "gpt2",
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": {"vocab_size": len(tokenizer), "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd,
                   "block_size": block_size},
        "training": {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
                     "warmup_steps": warmup, "weight_decay": weight_decay, "seed": seed,
                     "threads": threads or previous_threads, "tokens_seen": steps * batch_size * block_size},
        "corpus": {**stats.as_dict(), "documents_used": len(texts), "tokens": int(data.numel())},
        "loss_curve": curve,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "thresher_proxy.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    log.info("proxy LM (%d parameters) written to %s in %.1f s", metadata["parameters"], out, metadata["seconds"])
    return out
