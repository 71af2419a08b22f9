"""Benchmark corpora: the real C4 sample of ../shared/data, repeated with random edits.

Repetition inflates the volume, not the variety: every copy swaps two words of each document so
that no two copies are byte-identical. The scripts say so in their output.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
from pathlib import Path

SHARED_DATA = Path(
    os.environ.get("THRESHER_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def c4_sample() -> list[str]:
    path = SHARED_DATA / "c4_sample.jsonl"
    if not path.is_file():
        sys.exit(f"bench needs the real C4 sample at {path} (set THRESHER_SHARED_DATA)")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def write_c4_like(path: Path, n_docs: int, seed: int = 0) -> Path:
    """`n_docs` C4-style JSON lines (text/url/timestamp), gzip level 1."""
    rng = random.Random(seed)
    texts = c4_sample()
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        for i in range(n_docs):
            words = texts[i % len(texts)].split(" ")
            a, b = rng.randrange(len(words)), rng.randrange(len(words))
            words[a], words[b] = words[b], words[a]
            handle.write(json.dumps({"text": " ".join(words), "url": f"https://example.org/{i}",
                                     "timestamp": "2019-04-25T12:57:54Z"}) + "\n")
    return path
