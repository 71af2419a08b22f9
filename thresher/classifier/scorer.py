"""The classifier on disk and as a scorer.

    <run>/models/classifier_<name>/<model_hash>/model.bin    the fastText model (floret's binary format:
                                                             raw arrays, not a pickle)
    <run>/models/classifier_<name>/<model_hash>/model.json   settings, data counts, label balance,
                                                             metrics, seed, floret version
    <run>/models/classifier_<name>/latest.json               names the newest model

`ClassifierScorer(model=...)` writes `classifier_<name>_score`: P(positive) as float32. The model is
loaded once per process on first use and kept outside the dataclass, so a scorer shipped to a
worker carries its path and hash only. A batch is one fastText call (`multilinePredict`) with k=1:
P(positive) is the top label's probability or its complement; floret's k=-1 path returns the same
probability for both labels of a row (floret 0.10.5), and the Python wrapper's per-row newline
check costs more than it protects here (`thresher.classifier.text` already removed newlines).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from thresher.classifier.text import LABEL_POSITIVE, prediction_lines
from thresher.models.loaded import on_release
from thresher.scorers.base import ScorerBase
from thresher.storage.parquet_io import write_json_atomic
from thresher.storage.run_dir import RunDir

MODEL_FORMAT = "thresher-fasttext-classifier/1"


class ClassifierError(ValueError):
    """A classifier that cannot be trained or loaded; the message says why."""


def model_root(run: RunDir, name: str) -> Path:
    return run.root / "models" / f"classifier_{name}"


def file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=8)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(directory: Path, model: Any, metadata: dict) -> tuple[Path, str]:
    """Write model.bin + model.json into directory/<model_hash>/ and point latest.json at it; the
    hash is the model file's own, so the same seed and data give the same directory."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / "model.bin.tmp"
    model.save_model(str(staging))
    model_hash = file_hash(staging)
    out = directory / model_hash
    out.mkdir(parents=True, exist_ok=True)
    staging.replace(out / "model.bin")
    write_json_atomic(out / "model.json", {**metadata, "format": MODEL_FORMAT, "model_hash": model_hash})
    write_json_atomic(directory / "latest.json", {"model_hash": model_hash, "path": model_hash})
    return out, model_hash


def resolve_model(path: str | Path) -> Path:
    """A model directory (with model.json), or the newest model under a classifier_<name>/ directory."""
    path = Path(path).expanduser()
    if (path / "model.json").is_file():
        return path.resolve()
    if path.name in ("model.json", "model.bin") and path.is_file():
        return path.parent.resolve()
    latest = path / "latest.json"
    if latest.is_file():
        return (path / json.loads(latest.read_text(encoding="utf-8"))["path"]).resolve()
    raise FileNotFoundError(f"{path} is not a classifier model (no model.json, no latest.json)")


def read_metadata(directory: Path) -> dict:
    meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ClassifierError(f"{directory}: unknown classifier format {meta.get('format')!r}")
    return meta


def load_fasttext(path: Path) -> Any:
    import floret  # the `classifier` extra; imported only where a model is used

    return floret.load_model(str(path))


def positive_probability(model: Any, lines: list[str]) -> np.ndarray:
    """P(positive) of each newline-terminated line, in one fastText call."""
    labels, probabilities = model.f.multilinePredict(lines, 1, 0.0, "strict")
    top = np.fromiter((p[0] for p in probabilities), dtype=np.float64, count=len(lines))
    positive = np.fromiter((label[0] == LABEL_POSITIVE for label in labels), dtype=bool, count=len(lines))
    # fastText's softmax output is floored at 1e-5 per label: clip back into [0, 1].
    return np.clip(np.where(positive, top, 1.0 - top), 0.0, 1.0)


_models: dict[tuple[str, str], Any] = {}
on_release(_models.clear)


@dataclass(frozen=True)
class ClassifierScorer(ScorerBase):
    """Scores rows with a trained fastText classifier: `classifier_<name>_score` = P(positive)."""

    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = ("{name}_score",)
    column_params: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"model": "the model's name names the column: classifier_<model name>_score"})

    model: str
    """A model directory (…/classifier_<name>/<hash>) or its classifier_<name>/ parent (the newest model)."""
    model_hash: str = field(init=False, default="")
    model_name: str = field(init=False, default="")
    lowercase: bool = field(init=False, default=True)
    max_chars: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        directory = resolve_model(self.model)
        meta = read_metadata(directory)
        object.__setattr__(self, "model", str(directory))
        object.__setattr__(self, "model_hash", meta["model_hash"])
        object.__setattr__(self, "model_name", meta["name"])
        object.__setattr__(self, "lowercase", bool(meta["text"]["lowercase"]))
        object.__setattr__(self, "max_chars", int(meta["text"]["max_chars"]))

    @property
    def name(self) -> str:
        return f"classifier_{self.model_name}"

    @property
    def score_column(self) -> str:
        return f"{self.name}_score"

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field(self.score_column, pa.float32())])

    def prepare(self) -> None:
        self.loaded()

    def loaded(self) -> Any:
        key = (self.model, self.model_hash)
        if key not in _models:
            path = Path(self.model) / "model.bin"
            if file_hash(path) != self.model_hash:
                raise ClassifierError(f"{path} changed since this scorer was built")
            _models[key] = load_fasttext(path)
        return _models[key]

    def predict(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        lines = prediction_lines(texts, lowercase=self.lowercase, max_chars=self.max_chars)
        return positive_probability(self.loaded(), lines)

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        texts = batch.column("text")
        scores = self.predict(texts).astype(np.float32)
        mask = texts.is_null().to_numpy(zero_copy_only=False) if texts.null_count else None
        return pa.RecordBatch.from_arrays([batch.column("doc_id"), pa.array(scores, pa.float32(), mask=mask)],
                                          schema=self.output_schema)
