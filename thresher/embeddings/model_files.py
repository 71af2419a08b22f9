"""What every embedding encoder shares: a model's files (`ModelFiles`), the encoded batch
(`Encoded`), the character pre-cut and L2 normalisation. A module of its own so that the encoders
(thresher.embeddings.models, thresher.embeddings.static) depend on it, not on each other."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHARS_PER_TOKEN_BOUND = 32


class EmbeddingModelError(ValueError):
    """A model reference that cannot be used; the message says what was tried and what to install."""


@dataclass(frozen=True)
class ModelFiles:
    """Where one embedding model's files are, and what its configuration says (read without torch)."""

    ref: str
    directory: Path | None  # sentence-transformers / Hugging Face directory
    onnx_file: Path | None  # an ONNX export of the same model (last_hidden_state output)
    origin: str  # packaged, path or hf-cache
    dimension: int
    max_seq_length: int
    pooling: str  # mean, cls, max, ... (the ONNX path supports mean and cls)
    has_dense: bool  # a Dense module after pooling (ONNX path unsupported)
    static: bool = False  # a model2vec directory: one vector per token (thresher.embeddings.static)
    distill_from: ModelFiles | None = None  # static: the located model `directory` is distilled from, on first use
    identity: str | None = None  # the fingerprint when known without reading files (a distillation's key)

    @property
    def tokenizer_file(self) -> Path | None:
        if self.directory is not None and (self.directory / "tokenizer.json").is_file():
            return self.directory / "tokenizer.json"
        return None

    def fingerprint(self) -> str:
        """Content identity of the model's files (size + first and last MiB of each file); for a
        distilled static model, the key of its source's fingerprint and the distillation settings
        (the same before and after it is distilled)."""
        from thresher.storage.readers import file_fingerprint

        if self.identity is not None:
            return self.identity
        digest = hashlib.blake2b(digest_size=16)
        files: list[Path] = []
        if self.directory is not None:
            files += sorted(p for p in self.directory.rglob("*") if p.is_file() and not p.name.startswith(".")
                            and p.suffix not in (".md",))
        if self.onnx_file is not None:
            files.append(self.onnx_file)
        for file in files:
            name = file.name if self.directory is None or file == self.onnx_file else str(
                file.relative_to(self.directory))
            digest.update(name.encode() + b"\x1f" + file_fingerprint(file).encode() + b"\x1e")
        return digest.hexdigest()


@dataclass
class Encoded:
    vectors: np.ndarray  # (n, dimension) float32, unit L2 norm
    tokens: np.ndarray  # (n,) int32: tokens embedded, special tokens included
    truncated: np.ndarray  # (n,) bool: the text had more than max_seq_length tokens


def cut_texts(texts: list[str], max_seq_length: int) -> tuple[list[str], np.ndarray]:
    limit = max_seq_length * CHARS_PER_TOKEN_BOUND
    return [t[:limit] for t in texts], np.fromiter((len(t) > limit for t in texts), dtype=bool, count=len(texts))


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
