"""Two- and three-domain corpora from the real samples in tests/data.

- web: C4 documents (c4_sample.jsonl), optionally repeated with two words swapped per copy;
- wiki: Wikipedia articles (wikipedia_sample.txt, one article per line) cut into paragraph-sized
  chunks at sentence ends (the sample has lost its paragraph breaks: "...socialism.Humans ...");
  articles 0-14 feed the target, articles 15-29 the mixture, so the target's text never occurs
  in the pool;
- alpaca: Alpaca instruction records (alpaca_5000.json); the first half feeds the pool, the second
  half the target.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from thresher.config import IngestConfig, InputSpec
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import discover_shards
from thresher.storage.run_dir import RunDir

_SENTENCE_END = re.compile(r"(?<=[.!?])(?=[A-Z])|(?<=[.!?])\s+")


def wiki_chunks(sample_data: Path, articles: range, min_words: int = 150) -> list[str]:
    lines = [line for line in (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8").split("\n")
             if line.strip()]
    chunks = []
    for index in articles:
        current: list[str] = []
        words = 0
        for sentence in _SENTENCE_END.split(lines[index]):
            if not sentence.strip():
                continue
            current.append(sentence.strip())
            words += len(sentence.split())
            if words >= min_words:
                chunks.append(" ".join(current))
                current, words = [], 0
    return chunks


def c4_texts(sample_data: Path, copies: int = 1, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    base = [json.loads(line)["text"] for line in open(sample_data / "c4_sample.jsonl", encoding="utf-8")
            if line.strip()]
    out = []
    for copy in range(copies):
        for text in base:
            words = text.split(" ")
            if copy:
                i, j = rng.randrange(len(words)), rng.randrange(len(words))
                words[i], words[j] = words[j], words[i]
            out.append(" ".join(words))
    return out


def alpaca_records(sample_data: Path) -> list[dict]:
    return json.loads((sample_data / "alpaca_5000.json").read_text(encoding="utf-8"))


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}) + "\n")
    return path


def alpaca_text(record: dict) -> str:
    parts = [record["instruction"], record.get("input") or "", record["output"]]
    return "\n\n".join(p for p in parts if p)


def build_pool(sample_data: Path, directory: Path, *, wiki_docs: int, c4_copies: int = 1,
               alpaca_docs: int = 0, seed: int = 0) -> dict[str, Path]:
    """The mixture's input files, one per domain (the file name is the catalog's `source`)."""
    rng = random.Random(seed)
    pool_wiki = wiki_chunks(sample_data, range(15, 30))
    files = {
        "c4": write_jsonl(directory / "c4.jsonl", c4_texts(sample_data, c4_copies, seed)),
        "wiki": write_jsonl(directory / "wiki.jsonl", rng.sample(pool_wiki, wiki_docs)),
    }
    if alpaca_docs:
        records = alpaca_records(sample_data)[:2500]
        texts = [alpaca_text(r) for r in rng.sample(records, alpaca_docs)]
        files["alpaca"] = write_jsonl(directory / "alpaca.jsonl", texts)
    return files


def build_targets(sample_data: Path, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    alpaca = directory / "alpaca_target.json"
    alpaca.write_text(json.dumps(alpaca_records(sample_data)[2500:]), encoding="utf-8")
    return {"wiki": write_jsonl(directory / "wiki_target.jsonl", wiki_chunks(sample_data, range(0, 15))),
            "alpaca": alpaca}


def ingest_files(run_dir: Path, files: list[Path], seed: int = 0) -> RunDir:
    """Ingest without Prefect (storage.ingest, as the flows' tasks do)."""
    run = RunDir(run_dir)
    run.init(seed=seed)
    spec = InputSpec(paths=[str(p) for p in files], format="jsonl")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    return run
