"""The embedding scorer: one L2-normalised sentence embedding per row, into a sidecar table.

    scores/embed@1/part-<shard>.parquet   doc_id, embed_vector (float32[dim]), embed_tokens, embed_truncated

A Scorer like every other (frozen dataclass, `score(batch)` -> the same rows in the same order,
model loaded lazily once per process, pickles cheaply), so its sidecar is keyed by doc_id, cached
under the shard's content + `embed@1` + the parameters hash, and visible in the catalog as
`score_embed` (DuckDB's `array_cosine_similarity` works on the column). The vector is a
fixed-size list (`pa.list_(pa.float32(), dim)`; 384 for MiniLM), so readers get a contiguous
float32 matrix without copying.

`tag` names a second embedding of the same run (`embed_<tag>@1`, columns `embed_<tag>_*`), e.g. a
larger model next to MiniLM; `text_column` embeds another column of the table than `text` (e.g.
`instruction`), read through `input_columns` as judges do.

Null text gives a null vector; an empty string is embedded (its special tokens only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.embeddings.models import (
    BACKENDS,
    DEFAULT_EMBEDDING_MODEL,
    EmbeddingModelError,
    Encoded,
    get_encoder,
    located,
)
from thresher.scorers.base import ScorerBase

TAG_PATTERN = r"^[a-z][a-z0-9_]{0,29}$"


def vector_type(dimension: int) -> pa.DataType:
    return pa.list_(pa.float32(), dimension)


def vectors_to_arrow(vectors: np.ndarray, valid: np.ndarray | None = None) -> pa.FixedSizeListArray:
    """(n, d) float32 -> a fixed-size-list array (rows where `valid` is false are null)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    mask = None if valid is None or valid.all() else pa.array(~valid)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), d, mask=mask)


def arrow_to_vectors(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A vector column -> ((n, d) float32 matrix, validity mask); null rows are zeros.

    Takes fixed-size lists (what thresher writes) and plain lists of equal length (what DuckDB
    returns for them: Parquet has no fixed-size list type)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    if not pa.types.is_fixed_size_list(column.type):
        lengths = pc.list_value_length(column).drop_null()
        d = int(lengths[0].as_py()) if len(lengths) else 0
        if len(lengths) and pc.any(pc.not_equal(lengths, d)).as_py():
            raise ValueError("vectors of unequal length in one column")
        column = column.cast(pa.list_(pa.float32(), d))
    elif column.type.value_type != pa.float32():
        column = column.cast(pa.list_(pa.float32(), column.type.list_size))
    d = column.type.list_size
    valid = np.ones(n, dtype=bool) if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)
    if column.null_count:
        column = column.fill_null(pa.scalar([0.0] * d, column.type))
    # flatten() honours the array's offset: the values of a sliced array start at its first row
    matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, d)
    return matrix, valid


@dataclass(frozen=True)
class EmbeddingScorer(ScorerBase):
    """Sentence embeddings of one text column (see the module doc)."""

    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = ("{name}_vector", "{name}_tokens", "{name}_truncated")
    column_params: ClassVar[Mapping[str, str]] = MappingProxyType({
        "tag": "names the columns embed_<tag>_... (default embed_...)",
        "model": "sets the width of the vector",
    })

    model: str = DEFAULT_EMBEDDING_MODEL
    """Packaged name (all-minilm-l6-v2), sentence-transformers directory, or Hugging Face cache id."""
    backend: Literal["auto", "onnx", "sentence_transformers", "static"] = "auto"
    """onnx (onnxruntime, no torch), sentence_transformers, or auto (ONNX on CPU when the model has an
    ONNX export, sentence-transformers otherwise)."""
    onnx_file: str | None = None
    """ONNX export of `model` (default for the packaged MiniLM: its int8 build)."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (CUDA when torch sees one)."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """sentence-transformers weights: float32, float16, bfloat16, or auto (float16 on CUDA, else float32)."""
    max_seq_length: int | None = None
    """Tokens per text at most (default: the model's, 256 for MiniLM)."""
    batch_size: int = 64
    text_column: str = "text"
    """The column embedded."""
    tag: str | None = None
    """Names a second embedding of a run: scorer `embed_<tag>`."""
    threads: int | None = None
    """CPU threads of the encoder (default: the runtime's)."""
    trust_remote_code: bool = False
    model_fingerprint: str | None = field(init=False, default=None)
    dimension: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        import re

        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {self.dtype!r}")
        if self.batch_size < 1 or (self.max_seq_length is not None and self.max_seq_length < 2):
            raise ValueError("batch_size must be >= 1 and max_seq_length >= 2")
        if self.tag is not None and not re.match(TAG_PATTERN, self.tag):
            raise ValueError(f"tag must match {TAG_PATTERN}, got {self.tag!r}")
        files = located(self.model, self.onnx_file, self.backend)  # fails now on a model that is not here
        if self.backend == "onnx" and files.onnx_file is None:
            raise EmbeddingModelError(f"{self.model}: backend onnx needs an ONNX export (onnx_file)")
        object.__setattr__(self, "model_fingerprint", files.fingerprint())
        object.__setattr__(self, "dimension", files.dimension)

    # -- identity -----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "embed" if self.tag is None else f"embed_{self.tag}"

    @property
    def vector_column(self) -> str:
        return f"{self.name}_vector"

    @property
    def input_columns(self) -> tuple[str, ...]:
        return ("doc_id", self.text_column)

    @property
    def output_schema(self) -> pa.Schema:
        n = self.name
        return pa.schema([
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field(f"{n}_vector", vector_type(self.dimension)),
            pa.field(f"{n}_tokens", pa.int32()),
            pa.field(f"{n}_truncated", pa.bool_()),
        ])

    # -- embedding ----------------------------------------------------------------------------------

    def encoder(self):
        return get_encoder(self.model, onnx_file=self.onnx_file, backend=self.backend, device=self.device,
                           dtype=self.dtype, max_seq_length=self.max_seq_length, batch_size=self.batch_size,
                           threads=self.threads, trust_remote_code=self.trust_remote_code,
                           fingerprint=self.model_fingerprint)

    def embed(self, texts: list[str]) -> Encoded:
        """Unit-norm float32 vectors of `texts` (plus token counts and truncation flags)."""
        if not texts:
            return Encoded(np.zeros((0, self.dimension), np.float32), np.zeros(0, np.int32), np.zeros(0, bool))
        return self.encoder().encode(texts)

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        if self.text_column not in batch.schema.names:
            raise ValueError(f"{self.name} embeds column {self.text_column!r}, absent from the batch; run it with "
                             "`thresher embeddings embed` (which reads the scorer's input_columns)")
        texts = batch.column(self.text_column).to_pylist()
        present = [i for i, t in enumerate(texts) if t is not None]
        encoded = self.embed([texts[i] for i in present])
        n = batch.num_rows
        vectors = np.zeros((n, self.dimension), dtype=np.float32)
        tokens = np.zeros(n, dtype=np.int32)
        truncated = np.zeros(n, dtype=bool)
        valid = np.zeros(n, dtype=bool)
        if present:
            rows = np.array(present)
            vectors[rows], tokens[rows], truncated[rows], valid[rows] = (
                encoded.vectors, encoded.tokens, encoded.truncated, True)
        invalid = None if valid.all() else ~valid
        return pa.RecordBatch.from_arrays(
            [batch.column("doc_id"), vectors_to_arrow(vectors, valid),
             pa.array(tokens, pa.int32(), mask=invalid), pa.array(truncated, pa.bool_(), mask=invalid)],
            schema=self.output_schema)
