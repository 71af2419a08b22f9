"""A learned prompt-injection detector beside the patterns: an opt-in judge screen.

The patterns (thresher.judges.detect) catch 60 % of attacks written blind against them; a logistic
head on all-MiniLM-L6-v2 sentence embeddings (the packaged int8 ONNX model) catches most of the
rest (README, "Prompt injection"). A text scores its most suspicious sentence (or itself whole):
an attack is one or two sentences appended to an ordinary answer, and averaging over the answer
would dilute it.

`fit_injection_head` fits it with thresher's numpy logistic regression (attacks repeated
`POSITIVE_REPEAT` times against benign texts and real answers, whose sentences are the negatives);
`thresher judge train-injection-head` writes it as JSON (weights, bias, threshold, the embedding
model's fingerprint; no pickle), and a judge given `injection_head: PATH` flags and floors what it
flags like a pattern hit (`_injection` = "learned_head"). The threshold trades caught attacks
against good rows floored; it is the recipe's decision, recorded in the file.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from thresher.judges.fitting import logistic_fit, sigmoid
from thresher.storage.parquet_io import write_json_atomic

HEAD_FORMAT = "thresher.injection_head/1"
EMBED_MODEL = "all-minilm-l6-v2"
POSITIVE_REPEAT = 20  # attacks are few: repeated rather than weighted (logistic_fit takes no weights)
MIN_SENTENCE_CHARS = 8
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text's sentences and lines of at least `MIN_SENTENCE_CHARS` characters (the text itself
    when it has none)."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if len(p.strip()) >= MIN_SENTENCE_CHARS]
    return parts or [text]


def _encoder(model: str):
    from thresher.embeddings.models import get_encoder

    return get_encoder(model, onnx_file=None, backend="onnx", device="cpu", dtype="auto", max_seq_length=128,
                       batch_size=64, threads=1, trust_remote_code=False, fingerprint=None)


def _model_fingerprint(model: str) -> str:
    from thresher.embeddings.models import located

    return located(model, None).fingerprint()


def _embed(model: str, texts: Sequence[str]) -> np.ndarray:
    return np.asarray(_encoder(model).encode(list(texts)).vectors, dtype=float)


@dataclass(frozen=True)
class InjectionHead:
    weights: tuple[float, ...]
    bias: float
    threshold: float
    model: str
    model_fingerprint: str
    trained_on: dict

    def scores(self, texts: Sequence[str]) -> list[float]:
        """P(injection) of each text: the highest over its sentences and the whole text."""
        pieces = [[*sentences(t), t] if t else [] for t in texts]
        flat = [s for p in pieces for s in p]
        if not flat:
            return [0.0] * len(texts)
        probabilities = sigmoid(_embed(self.model, flat) @ np.asarray(self.weights) + self.bias)
        out, at = [], 0
        for p in pieces:
            out.append(float(probabilities[at: at + len(p)].max()) if p else 0.0)
            at += len(p)
        return out

    def flags(self, texts: Sequence[str]) -> list[bool]:
        return [s > self.threshold for s in self.scores(texts)]

    def save(self, path: str | Path) -> None:
        write_json_atomic(Path(path), {"format": HEAD_FORMAT, **asdict(self)})

    @classmethod
    def load(cls, path: str | Path) -> InjectionHead:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("format") != HEAD_FORMAT:
            raise ValueError(f"{path}: not an injection head ({HEAD_FORMAT}); write one with "
                             "`thresher judge train-injection-head`")
        head = cls(tuple(raw["weights"]), raw["bias"], raw["threshold"], raw["model"], raw["model_fingerprint"],
                   raw["trained_on"])
        found = _model_fingerprint(head.model)
        if found != head.model_fingerprint:
            raise ValueError(f"{path}: fitted on {head.model} {head.model_fingerprint}, but that model here is "
                             f"{found}: refit the head")
        return head


@functools.lru_cache(maxsize=4)
def load_head(path: str, mtime_ns: int) -> InjectionHead:
    """One load per file version per process (judges screen batch after batch)."""
    return InjectionHead.load(path)


def fit_injection_head(attacks: Sequence[str], benign: Sequence[str], *, threshold: float = 0.8,
                       l2: float = 1e-3, model: str = EMBED_MODEL) -> InjectionHead:
    """A head from attack texts and benign ones (look-alikes and real answers): every attack and
    each of its sentences is a positive, every benign text and each of its sentences a negative."""
    if not attacks or not benign:
        raise ValueError("an injection head needs attack texts and benign texts")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    positives = list(dict.fromkeys([*attacks, *(s for t in attacks for s in sentences(t))]))
    negatives = list(dict.fromkeys([*benign, *(s for t in benign for s in sentences(t))]))
    x = np.vstack([np.repeat(_embed(model, positives), POSITIVE_REPEAT, axis=0), _embed(model, negatives)])
    y = np.r_[np.ones(len(positives) * POSITIVE_REPEAT), np.zeros(len(negatives))]
    weights, bias = logistic_fit(x, y, l2=l2)
    return InjectionHead(tuple(float(w) for w in weights), float(bias), threshold, model, _model_fingerprint(model),
                         {"attack_texts": len(attacks), "benign_texts": len(benign), "positives": len(positives),
                          "negatives": len(negatives), "l2": l2})
