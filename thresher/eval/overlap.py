"""Is any training document of an arm also (in part) an evaluation text? Word n-gram overlap with
the same normalisation and hashes as benchmark decontamination (thresher.decontam.ngrams), so
"overlaps an eval set" means what `decontam_overlap > 0` means in a selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from thresher.decontam.ngrams import batch_ngrams
from thresher.decontam.scorer import contains_sorted


class EvalOverlapError(ValueError):
    """Training documents share text with an evaluation set: a comparison on it would measure recall."""


def ngram_index(texts: Sequence[str], n: int) -> np.ndarray:
    """Sorted unique n-gram hashes of `texts` (an eval set is small: it fits in memory)."""
    hashes = batch_ngrams(list(texts), n).hashes
    return np.unique(hashes)


@dataclass
class OverlapTally:
    """Training documents of one arm whose n-grams hit an eval set more than `max_overlap` times."""

    max_overlap: int
    documents: int = 0
    flagged: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # eval set -> (doc_id, n-grams)

    def add(self, doc_ids: Sequence[str], texts: Sequence[str], indexes: dict[str, np.ndarray], n: int) -> None:
        self.documents += len(doc_ids)
        if not indexes or not texts:
            return
        grams = batch_ngrams(list(texts), n)
        for name, index in indexes.items():
            hits = np.bincount(grams.text_of[contains_sorted(index, grams.hashes)], minlength=len(texts))
            for row in np.flatnonzero(hits > self.max_overlap):
                self.flagged.setdefault(name, []).append((doc_ids[row], int(hits[row])))

    def summary(self) -> dict[str, dict]:
        return {name: {"documents": len(found), "examples": [d for d, _ in found[:5]],
                       "max_ngrams": max(h for _, h in found)} for name, found in self.flagged.items()}
