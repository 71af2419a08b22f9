"""A corpus with planted near-duplicates, built from real text, and its exact ground truth.

Base documents are the real C4 sample; every base document gets variants made by random word
edits (substitution, deletion, insertion with equal probability) at a known per-word rate;
unrelated documents are chunks of real Wikipedia articles. The truth is computed exactly: the
Jaccard similarity of the word-5-gram sets (of `reference_tokens`) of every pair of documents that
shares at least one 5-gram.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from thresher.dedup.normalize import reference_tokens

# Per-word edit rates of the variants, cycled over the base documents. A rate e keeps a 5-gram
# with probability ~(1 - e)^5: Jaccard ~0.95 at 0.005, ~0.83 at 0.02, ~0.63 at 0.05, ~0.2 at 0.2.
EDIT_RATES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


def c4_texts(sample_data: Path) -> list[str]:
    with open(sample_data / "c4_sample.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def wikipedia_chunks(sample_data: Path, words: int = 300, limit: int = 200) -> list[str]:
    chunks = []
    for article in (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8").splitlines():
        tokens = article.split()
        chunks += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens) - words // 2, words)]
    return chunks[:limit]


def edit_words(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    out = []
    for word in text.split(" "):
        if rng.random() >= rate:
            out.append(word)
            continue
        kind = rng.randrange(3)
        if kind == 0:
            out.append(rng.choice(vocabulary))          # substitute
        elif kind == 2:
            out += [word, rng.choice(vocabulary)]       # insert after
        # kind == 1: delete
    return " ".join(out)


def shingle_set(text: str, n: int = 5) -> frozenset:
    tokens = reference_tokens(text)
    if not tokens:
        return frozenset()
    if len(tokens) < n:
        return frozenset([tuple(tokens)])
    return frozenset(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class PlantedCorpus:
    texts: list[str]
    kinds: list[str]              # "base", "variant:<rate>", "unrelated"
    pairs: dict[tuple[int, int], float]  # Jaccard of every pair sharing a shingle, i < j

    def true_pairs(self, threshold: float) -> set[tuple[int, int]]:
        return {p for p, j in self.pairs.items() if j >= threshold}

    def true_members(self, threshold: float) -> set[int]:
        """Documents with at least one other document at Jaccard >= threshold."""
        return {i for p in self.true_pairs(threshold) for i in p}


def build(sample_data: Path, seed: int = 0, variants_per_base: int = 2) -> PlantedCorpus:
    rng = random.Random(seed)
    bases = c4_texts(sample_data)
    vocabulary = sorted({w for t in bases for w in t.split()})
    texts, kinds = [], []
    for i, base in enumerate(bases):
        texts.append(base)
        kinds.append("base")
        for v in range(variants_per_base):
            rate = EDIT_RATES[(i + v * 3) % len(EDIT_RATES)]
            texts.append(edit_words(base, rate, rng, vocabulary))
            kinds.append(f"variant:{rate}")
    for chunk in wikipedia_chunks(sample_data):
        texts.append(chunk)
        kinds.append("unrelated")
    sets = [shingle_set(t) for t in texts]
    index: dict = defaultdict(list)
    for d, s in enumerate(sets):
        for shingle in s:
            index[shingle].append(d)
    candidates = set()
    for docs in index.values():
        if 1 < len(docs) < 200:
            candidates.update((a, b) for x, a in enumerate(docs) for b in docs[x + 1 :])
    pairs = {(a, b): jaccard(sets[a], sets[b]) for a, b in candidates}
    return PlantedCorpus(texts, kinds, pairs)


def precision_recall(predicted: set, truth: set) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
