"""Run directories for dedup tests: texts written as JSONL shards and ingested by the real ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.config import IngestConfig, InputSpec
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import discover_shards
from thresher.storage.run_dir import RunDir


def write_shards(directory: Path, texts: list[str], shards: int, prefix: str = "part") -> Path:
    """`texts` round-robin over `shards` JSONL files; each record's url is `planted://<index>`."""
    directory.mkdir(parents=True, exist_ok=True)
    handles = [open(directory / f"{prefix}-{s:02d}.jsonl", "w", encoding="utf-8") for s in range(shards)]
    for i, text in enumerate(texts):
        handles[i % shards].write(json.dumps({"text": text, "url": f"planted://{i}"}) + "\n")
    for handle in handles:
        handle.close()
    return directory


def ingest(run_root: Path, inputs: Path) -> RunDir:
    run = RunDir(run_root)
    if not run.exists():
        run.init(seed=0)
    spec = InputSpec(paths=[str(inputs)], format="jsonl", text_field="text", url_field="url")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig(batch_rows=256))
    return run


def read_dir(directory: Path) -> pa.Table | None:
    parts = sorted(directory.glob("part-*.parquet"))
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(p) for p in parts]).replace_schema_metadata(None)


def dedup_outputs(run: RunDir) -> dict[str, pa.Table]:
    """Every table the dedup stage wrote, in a canonical order (sidecars and signatures by doc_id)."""
    out = {}
    for directory in sorted((run.root / "dedup").iterdir()):
        table = read_dir(directory) if directory.is_dir() else None
        if table is not None:
            out[f"dedup/{directory.name}"] = table
    for key in ("exact_dedup@1", "minhash_dedup@1"):
        table = read_dir(run.root / "scores" / key)
        if table is not None:
            out[f"scores/{key}"] = table
    for name, table in out.items():
        keys = [c for c in ("doc_id", "cluster_id", "src_doc_id", "dst_doc_id", "doc_key") if c in table.column_names]
        out[name] = table.sort_by([(k, "ascending") for k in keys])
    return out


def by_url(run: RunDir, sidecar: str = "minhash_dedup@1") -> dict[int, dict]:
    """planted index -> sidecar row, joining the documents table's url."""
    docs = read_dir(run.table_dir("documents")).select(["doc_id", "url"]).to_pylist()
    index = {d["doc_id"]: int(d["url"].rsplit("/", 1)[1]) for d in docs}
    rows = read_dir(run.root / "scores" / sidecar).to_pylist()
    return {index[r["doc_id"]]: r for r in rows}
