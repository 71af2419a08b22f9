"""A real instruction corpus with planted semantic duplicates, and the truth about them.

Both instruction files of tests/data hold records of the Stanford Alpaca 52k set:
`alpaca_5000.json` with the original text-davinci-003 responses, `alpaca_sample.json` with GPT-4
responses to other records of the same set. 95 instructions (with their inputs) occur in both:
the same request answered twice, independently, by two models. Those pairs are the planted
paraphrases: semantically near-identical rows whose words differ (their word-5-gram Jaccard is
0.07 at the median, so MinHash misses almost all of them). Around them: 300 unrelated records of
each file. Ingested as two files, so `source` says which model answered.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from thresher.config import IngestConfig, InputSpec
from thresher.storage.catalog import build_catalog, open_catalog
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import discover_shards
from thresher.storage.run_dir import RunDir

DAVINCI, GPT4 = "davinci.json", "gpt4.json"


def _key(record: dict) -> tuple[str, str]:
    return record["instruction"].strip(), record.get("input", "").strip()


def write_corpus(sample_data: Path, directory: Path, background: int = 300, seed: int = 0) -> list[Path]:
    davinci = json.loads((sample_data / "alpaca_5000.json").read_text(encoding="utf-8"))
    gpt4 = json.loads((sample_data / "alpaca_sample.json").read_text(encoding="utf-8"))
    in_davinci, in_gpt4 = {_key(r) for r in davinci}, {_key(r) for r in gpt4}
    rng = random.Random(seed)
    files = []
    for name, records, other in ((DAVINCI, davinci, in_gpt4), (GPT4, gpt4, in_davinci)):
        shared = [r for r in records if _key(r) in other]
        rest = [r for r in records if _key(r) not in other]
        chosen = shared + rng.sample(rest, background)
        path = directory / name
        path.write_text(json.dumps(chosen), encoding="utf-8")
        files.append(path)
    return files


def ingest(run_dir: Path, files: list[Path], seed: int = 0) -> RunDir:
    """Ingest without Prefect (storage.ingest, as the flows' tasks do) and build the catalog."""
    run = RunDir(run_dir)
    run.init(seed=seed)
    spec = InputSpec(paths=[str(p) for p in files], format="alpaca")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    build_catalog(run)
    return run


@dataclass(frozen=True)
class Truth:
    pairs: list[tuple[str, str]]  # (davinci doc_id, gpt4 doc_id): the same instruction answered twice
    doc_ids: list[str]

    def members(self) -> set[str]:
        return {d for pair in self.pairs for d in pair}


def truth(run: RunDir) -> Truth:
    with open_catalog(run) as con:
        pairs = con.execute(f"""
            SELECT a.doc_id, b.doc_id FROM instructions a JOIN instructions b
              ON a.instruction = b.instruction AND a.input = b.input
            WHERE a.source = '{DAVINCI}' AND b.source = '{GPT4}' ORDER BY 1, 2
        """).fetchall()
        doc_ids = [d for (d,) in con.execute("SELECT doc_id FROM instructions ORDER BY doc_id").fetchall()]
    return Truth([(a, b) for a, b in pairs], doc_ids)
