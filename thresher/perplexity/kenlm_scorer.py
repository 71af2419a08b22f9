"""CCNet-style KenLM perplexity of each document.

Per document (CCNet's `DocLM` with normalisation on; DESIGN.md section 7):

    lines      = the document split on "\\n", each normalised by `ccnet_normalize` (when `normalise`)
                 and, with a SentencePiece model, turned into its pieces joined by spaces
    log10_prob = Σ over lines of `kenlm.Model.score(line, bos=True, eos=True)`   (math.fsum)
    words      = Σ over lines of len(line.split())
    perplexity = 10 ** (-log10_prob / (words + lines))        (the +1 per line is its </s>)

Columns (float64 raw values, never rounded or bucketed; bands and percentiles are catalog views,
see `thresher.perplexity.bands`):

- `kenlm_perplexity`: the perplexity above; null when the text is null or no line was scored
  (a blank document);
- `kenlm_log10_prob`: Σ log10 p over the scored lines (0.0 when nothing was scored);
- `kenlm_words`: Σ words (pieces with a SentencePiece model);
- `kenlm_lines`: the number of lines scored.

Blank lines (no word after normalisation) are skipped by default (`skip_blank_lines`): CCNet scores
them as an empty sentence, log10 p(</s> | <s>) with length 1, so its perplexity depends on how
many blank lines a page uses between paragraphs. Set `skip_blank_lines=False` for CCNet's numbers.

Words are counted as CCNet counts them, `str.split()` (any Unicode whitespace), while KenLM's own
tokenisation splits the UTF-8 bytes on ASCII whitespace only; the two differ only for lines that
contain Unicode spaces such as U+00A0, exactly as they do in CCNet.

The model (ARPA or KenLM binary, loaded with `kenlm.Model`) and the SentencePiece processor load
once per process on first use, keyed by path and file identity, and are never pickled with the
scorer. The model file's content fingerprint is a field of the scorer, so a retrained model at the
same path changes the cache key of every shard it scored.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from thresher.models.loaded import on_release
from thresher.perplexity.ccnet_normalize import normalize_document
from thresher.scorers.base import ScorerBase

if TYPE_CHECKING:
    import kenlm

_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("kenlm_perplexity", pa.float64()),
        pa.field("kenlm_log10_prob", pa.float64()),
        pa.field("kenlm_words", pa.int64()),
        pa.field("kenlm_lines", pa.int64()),
    ]
)

# Per-process caches, keyed by (resolved path, size, mtime): a file replaced in place is reloaded.
_lock = threading.Lock()
_models: dict[tuple, kenlm.Model] = {}
_sentencepieces: dict[tuple, Any] = {}


@on_release
def _forget_models() -> None:
    with _lock:
        _models.clear()
        _sentencepieces.clear()


def _file_key(path: str) -> tuple:
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"KenLM scorer: {path} does not exist") from None
    return (str(resolved), stat.st_size, stat.st_mtime_ns)


def load_kenlm_model(path: str | os.PathLike[str]) -> kenlm.Model:
    """The `kenlm.Model` for an ARPA or binary file, loaded once per process."""
    key = _file_key(os.fspath(path))
    with _lock:
        model = _models.get(key)
        if model is None:
            import kenlm

            model = kenlm.Model(key[0])
            _models[key] = model
        return model


def _load_sentencepiece(path: str) -> Any:
    key = _file_key(path)
    with _lock:
        processor = _sentencepieces.get(key)
        if processor is None:
            import sentencepiece

            processor = sentencepiece.SentencePieceProcessor(model_file=key[0])
            _sentencepieces[key] = processor
        return processor


def _fingerprint(path: str | None) -> str | None:
    if path is None or not Path(path).expanduser().is_file():
        return None
    from thresher.storage.readers import file_fingerprint

    return file_fingerprint(Path(path).expanduser())


@dataclass(frozen=True)
class KenLMPerplexityScorer(ScorerBase):
    """KenLM perplexity per document, CCNet-style (see the module doc)."""

    name: ClassVar[str] = "kenlm"
    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = tuple(_SCHEMA.names[1:])
    perplexity_column: ClassVar[str] = "kenlm_perplexity"

    model: str
    """ARPA (.arpa, optionally compressed as KenLM reads it) or KenLM binary file."""
    sentencepiece_model: str | None = None
    """Optional SentencePiece model: lines become pieces before scoring (CCNet's models need it)."""
    normalise: bool = True
    """Apply CCNet normalisation per line (off when the text is already normalised)."""
    skip_blank_lines: bool = True
    """Skip lines with no word; False scores them as CCNet does (see the module doc)."""
    model_fingerprint: str | None = field(init=False, default=None)
    sentencepiece_fingerprint: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # Content identity of the model files, so that the cache key follows the model, not its path.
        object.__setattr__(self, "model_fingerprint", _fingerprint(self.model))
        object.__setattr__(self, "sentencepiece_fingerprint", _fingerprint(self.sentencepiece_model))

    @property
    def output_schema(self) -> pa.Schema:
        return _SCHEMA

    def prepare(self) -> None:
        for path in (self.model, self.sentencepiece_model):
            if path is not None and not Path(path).expanduser().is_file():
                raise FileNotFoundError(f"KenLM scorer: {path} does not exist")

    def _scored_lines(self, texts: list[str | None]) -> list[tuple[list[str] | list[bytes], int] | None]:
        """Per document: the lines KenLM scores and their word count (None for a null text)."""
        prepared: list[tuple[list[str], int] | None] = []
        normalise, skip_blank = self.normalise, self.skip_blank_lines
        pieces = self.sentencepiece_model is not None
        for text in texts:
            if text is None:
                prepared.append(None)
            else:
                lines, words = _lines_and_words(normalize_document(text) if normalise else text, skip_blank,
                                                normalised=normalise)
                if pieces and lines and isinstance(lines[0], bytes):
                    lines = [line.decode("ascii") for line in lines]
                prepared.append((lines, words))
        if pieces:
            prepared = self._to_pieces(prepared)
        return prepared

    def _to_pieces(self, prepared: list[tuple[list[str], int] | None]) -> list[tuple[list[str], int] | None]:
        processor = _load_sentencepiece(self.sentencepiece_model)
        flat = [line for doc in prepared if doc for line in doc[0]]
        encoded = iter(processor.encode(flat, out_type=str) if flat else ())
        result: list[tuple[list[str], int] | None] = []
        for doc in prepared:
            if doc is None:
                result.append(None)
                continue
            pieces = [next(encoded) for _ in doc[0]]
            if self.skip_blank_lines:  # a line of characters the model drops has no piece left
                pieces = [p for p in pieces if p]
            result.append(([" ".join(p) for p in pieces], sum(map(len, pieces))))
        return result

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        score = load_kenlm_model(self.model).score
        fsum = math.fsum
        perplexities: list[float | None] = []
        log_probs: list[float | None] = []
        words: list[int | None] = []
        line_counts: list[int | None] = []
        for doc in self._scored_lines(batch.column("text").to_pylist()):
            if doc is None:
                perplexities.append(None)
                log_probs.append(None)
                words.append(None)
                line_counts.append(None)
                continue
            lines, n_words = doc
            log10_prob = fsum(map(score, lines))
            n_lines = len(lines)
            log_probs.append(log10_prob)
            words.append(n_words)
            line_counts.append(n_lines)
            perplexities.append(10.0 ** (-log10_prob / (n_words + n_lines)) if n_lines else None)
        return pa.RecordBatch.from_arrays(
            [
                batch.column("doc_id"),
                pa.array(perplexities, pa.float64()),
                pa.array(log_probs, pa.float64()),
                pa.array(words, pa.int64()),
                pa.array(line_counts, pa.int64()),
            ],
            schema=_SCHEMA,
        )


# ASCII bytes that are neither whitespace other than " " and "\n" nor other controls.
_SPACE_NEWLINE_PRINTABLE = bytes([10, *range(32, 128)])


def _lines_and_words(document: str, skip_blank: bool, normalised: bool) -> tuple[list[str] | list[bytes], int]:
    """The lines of `document` to score and Σ len(line.split()) over them (CCNet's word count).

    Fast path, for ASCII text whose only whitespace is " " and "\n" (all CCNet-normalised ASCII
    text, i.e. most web text once normalisation has mapped curly quotes and dashes to ASCII): the
    document is encoded once and its lines handed to KenLM as bytes (which `Model.score` would
    otherwise encode one by one), words are counted with a few C-level passes instead of being
    built as strings, and the only blank lines are empty unless a line starts with a space.
    """
    if document.isascii():
        data = document.encode("ascii")
        if normalised or not data.translate(None, _SPACE_NEWLINE_PRINTABLE):
            lines = data.split(b"\n")
            if skip_blank:
                if data.startswith(b" ") or b"\n " in data:
                    lines = [line for line in lines if line and not line.isspace()]
                elif b"" in lines:
                    lines = list(filter(None, lines))
            flat = data.replace(b"\n", b" ")
            while b"  " in flat:
                flat = flat.replace(b"  ", b" ")
            flat = flat.strip(b" ")
            return lines, flat.count(b" ") + 1 if flat else 0
    lines = document.split("\n")
    if skip_blank:
        lines = [line for line in lines if line and not line.isspace()]
    # Σ len(line.split()) over the lines, in one call: "\n" is whitespace to str.split.
    return lines, len(document.split())


def document_perplexity(log10_prob: float, words: int, lines: int) -> float:
    """CCNet's formula: 10 ** (-Σ log10 p / Σ (words + 1)), the sums over a document's lines."""
    return 10.0 ** (-log10_prob / (words + lines))
