"""Test corpora built from the real samples in tests/data."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path


def c4_documents(sample_data: Path) -> list[dict]:
    with open(sample_data / "c4_sample.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_c4_shards(sample_data: Path, directory: Path, shards: int, copies: int = 1, seed: int = 0) -> int:
    """C4 sample documents spread over `shards` json.gz files, `copies` times each, every copy
    edited (a sentence dropped, words swapped) so the copies are near, not exact, duplicates.
    Returns the number of documents written."""
    rng = random.Random(seed)
    docs = c4_documents(sample_data)
    directory.mkdir(parents=True, exist_ok=True)
    handles = [gzip.open(directory / f"c4-{i:03d}.json.gz", "wt", encoding="utf-8") for i in range(shards)]
    written = 0
    for copy in range(copies):
        for n, doc in enumerate(docs):
            words = doc["text"].split(" ")
            if copy:
                i = rng.randrange(len(words))
                j = rng.randrange(len(words))
                words[i], words[j] = words[j], words[i]
            record = {"text": " ".join(words), "url": f"https://example.org/{copy}/{n}",
                      "timestamp": "2019-04-25T12:57:54Z"}
            handles[written % shards].write(json.dumps(record) + "\n")
            written += 1
    for handle in handles:
        handle.close()
    return written
