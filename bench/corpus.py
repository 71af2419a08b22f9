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


def _wikitext_paragraphs(min_chars: int = 200) -> list[str]:
    """The paragraphs of the real WikiText-2 validation split (Wikipedia articles), headings dropped."""
    path = SHARED_DATA / "wikitext2_valid.txt"
    if not path.is_file():
        sys.exit(f"bench needs the WikiText-2 sample at {path} (set THRESHER_SHARED_DATA)")
    with open(path, encoding="utf-8") as handle:
        lines = (line.strip() for line in handle)
        return [line for line in lines if len(line) >= min_chars and not line.startswith("=")]


def _udhr_chunks(max_chars: int = 2000) -> list[str]:
    """The Universal Declaration of Human Rights in ~390 languages (udhr2.zip), cut at line ends into
    pieces of about `max_chars`: real text in many languages and scripts, English among them."""
    import zipfile

    path = SHARED_DATA / "udhr2.zip"
    if not path.is_file():
        sys.exit(f"bench needs the UDHR sample at {path} (set THRESHER_SHARED_DATA)")
    chunks: list[str] = []
    with zipfile.ZipFile(path) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".txt")):
            piece: list[str] = []
            for line in archive.read(name).decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    piece.append(line.strip())
                if sum(map(len, piece)) >= max_chars:
                    chunks.append("\n".join(piece))
                    piece = []
            if sum(map(len, piece)) >= max_chars // 4:
                chunks.append("\n".join(piece))
    return chunks


WEB_MIX = (("c4", 0.60), ("wikipedia", 0.20), ("udhr", 0.15), ("exact_copy", 0.05))


def write_web_mix(path: Path, n_docs: int, seed: int = 0) -> dict[str, int]:
    """`n_docs` C4-style JSON lines (text/url/timestamp), gzip level 1, drawn from real text in the
    shares of WEB_MIX: the 200-page C4 sample and the ~1,500 WikiText-2 paragraphs (each copy after
    the first with two words swapped, as `write_c4_like`: near duplicates), UDHR pieces in ~390
    languages (the same), and byte-exact copies of an earlier document. Returns the count per kind."""
    rng = random.Random(seed)
    pools = {"c4": c4_sample(), "wikipedia": _wikitext_paragraphs(), "udhr": _udhr_chunks()}
    seen = dict.fromkeys(pools, 0)
    counts = dict.fromkeys((kind for kind, _ in WEB_MIX), 0)
    written: list[str] = []
    kinds, shares = zip(*WEB_MIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        for i in range(n_docs):
            kind = rng.choices(kinds, shares)[0] if written else "c4"
            if kind == "exact_copy":
                text = written[rng.randrange(len(written))]
            else:
                pool = pools[kind]
                text = pool[seen[kind] % len(pool)]
                if seen[kind] >= len(pool):  # a repeat: two words swapped, so no two copies are byte-identical
                    words = text.split(" ")
                    a, b = rng.randrange(len(words)), rng.randrange(len(words))
                    words[a], words[b] = words[b], words[a]
                    text = " ".join(words)
                seen[kind] += 1
            counts[kind] += 1
            written.append(text)
            handle.write(json.dumps({"text": text, "url": f"https://example.org/{kind}/{i}",
                                     "timestamp": "2019-04-25T12:57:54Z"}) + "\n")
    return counts
