"""Reference labels without annotators: real answers (label 1) against degraded copies (label 0).

A judge that cannot tell an instruction's real answer from another instruction's answer, from the
first few words of it, or from its words shuffled, is not worth running. `degraded_pairs` builds
that set from real instruction data, seeded and deterministic:

- `swap`: the answer of another row (a random derangement, so never its own);
- `truncate`: the first `truncate_words` words of the answer;
- `shuffle`: the answer's words in random order.

Rows are drawn whose answers have between `min_words` and `max_words` words, so the degradations
really degrade (truncating a four-word answer to three words changes little) and prompts stay short.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

KINDS = ("swap", "truncate", "shuffle")


@dataclass(frozen=True)
class LabelledRow:
    instruction: str
    input: str
    output: str
    label: int  # 1 = the real answer, 0 = degraded
    kind: str  # "real" or the degradation
    source_index: int

    def fields(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}


def eligible(records: Sequence[dict], min_words: int = 15, max_words: int = 120) -> list[int]:
    return [
        i for i, r in enumerate(records)
        if isinstance(r.get("output"), str) and min_words <= len(r["output"].split()) <= max_words
    ]


def degraded_pairs(
    records: Sequence[dict],
    n: int,
    *,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    min_words: int = 15,
    max_words: int = 120,
    truncate_words: int = 4,
) -> list[LabelledRow]:
    """`n` real rows and `n` degraded ones (kinds cycled over the rows), interleaved."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown degradations {sorted(unknown)}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    pool = eligible(records, min_words, max_words)
    if len(pool) < max(n, 2):
        raise ValueError(f"only {len(pool)} records have answers of {min_words}-{max_words} words; need {n}")
    chosen = rng.sample(pool, n)
    donors = chosen[1:] + chosen[:1]  # a derangement of the chosen rows: no row gets its own answer
    rows: list[LabelledRow] = []
    for k, (i, donor) in enumerate(zip(chosen, donors)):
        rec = records[i]
        instruction, input_, output = rec["instruction"], rec.get("input") or "", rec["output"]
        rows.append(LabelledRow(instruction, input_, output, 1, "real", i))
        kind = kinds[k % len(kinds)]
        words = output.split()
        if kind == "swap":
            bad = records[donor]["output"]
        elif kind == "truncate":
            bad = " ".join(words[:truncate_words])
        else:
            shuffled = words[:]
            while shuffled == words:
                rng.shuffle(shuffled)
            bad = " ".join(shuffled)
        rows.append(LabelledRow(instruction, input_, bad, 0, kind, i))
    return rows
