"""The tokenizer every arm shares.

- `bpe` (default): a byte-level BPE of `bpe_vocab` tokens (Hugging Face `tokenizers`) trained for
  the eval on a seeded sample of the random arm's pool, so it favours no selection; saved as
  `eval/runs/<name>/tokenizer.json`. Measured on the wiki-vs-web test mixture, a BPE of 512 or 2,048 tokens
  separated DSIR, random and anti-DSIR selections at 200 steps where UTF-8 bytes needed 600 and
  still tied random with anti-DSIR: a byte model spends its first few hundred thousand tokens on
  spelling.
- `bytes`: UTF-8 bytes, nothing to train or download.
- a tokenizer directory or packaged model name (loaded without remote code), for larger budgets.

Documents are separated by an end-of-text token, as in pre-training streams.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BYTES = "bytes"
BPE = "bpe"
_BYTE_EOS = 256
_BPE_EOS = "<|endoftext|>"


@dataclass
class Tokenizer:
    """Encode texts into int32 ids with an end-of-text id after each; `identity` names it in cache keys."""

    identity: str
    vocab_size: int
    eos_id: int
    hf: Any = None
    bpe: Any = None

    def encode(self, text: str, *, eos: bool = True) -> np.ndarray:
        if self.bpe is not None:
            ids = np.asarray(self.bpe.encode(text).ids, dtype=np.int32)
        elif self.hf is None:
            ids = np.frombuffer(text.encode("utf-8", errors="replace"), dtype=np.uint8).astype(np.int32)
        else:
            ids = np.asarray(self.hf(text, add_special_tokens=False)["input_ids"], dtype=np.int32)
        return np.append(ids, np.int32(self.eos_id)) if eos else ids

    def encode_until(self, texts: Iterable[str], budget: int) -> tuple[np.ndarray, int]:
        """The texts' ids concatenated and cut at `budget` ids; also how many texts were read."""
        parts, total, read = [], 0, 0
        for text in texts:
            if total >= budget:
                break
            ids = self.encode(text)
            parts.append(ids)
            total += ids.size
            read += 1
        stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return stream[:budget], read


def train_bpe(texts: Iterable[str], vocab: int, out: Path) -> None:
    """Train the eval's byte-level BPE on `texts` and write it to `out` (atomically)."""
    from tokenizers import Tokenizer as BpeTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    bpe = BpeTokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[_BPE_EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer=trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    bpe.save(str(tmp))
    tmp.replace(out)


def load_tokenizer(ref: str, trained: Path | None = None) -> Tokenizer:
    """`bytes`; `bpe` (the eval's trained file `trained`); or a tokenizer directory / packaged model
    name (loaded without remote code)."""
    if ref == BYTES:
        return Tokenizer(identity="bytes-v1", vocab_size=257, eos_id=_BYTE_EOS)
    if ref == BPE:
        from tokenizers import Tokenizer as BpeTokenizer

        if trained is None or not trained.is_file():
            raise FileNotFoundError(f"the eval's BPE tokenizer {trained} is missing: run the eval's plan first")
        bpe = BpeTokenizer.from_file(str(trained))
        identity = "bpe-" + hashlib.blake2b(trained.read_bytes(), digest_size=8).hexdigest()
        return Tokenizer(identity=identity, vocab_size=bpe.get_vocab_size(), eos_id=bpe.token_to_id(_BPE_EOS),
                         bpe=bpe)
    from transformers import AutoTokenizer

    from thresher.models.resolve import resolve_model

    directory = Path(ref) if Path(ref).is_dir() else Path(resolve_model(ref))
    hf = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    eos = hf.eos_token_id if hf.eos_token_id is not None else hf.pad_token_id
    if eos is None:
        raise ValueError(f"tokenizer {ref}: it has no end-of-text token")
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(p.name for p in directory.iterdir() if "token" in p.name or p.name == "vocab.json"):
        digest.update(name.encode() + (directory / name).read_bytes())
    return Tokenizer(identity=f"hf-{digest.hexdigest()}", vocab_size=len(hf), eos_id=int(eos), hf=hf)
