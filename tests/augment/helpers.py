from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_dir(folder: Path, sort_by: str) -> list[dict]:
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        return []
    table = pa.concat_tables([pq.read_table(p).replace_schema_metadata(None) for p in parts])
    return sorted(table.to_pylist(), key=lambda r: (r.get("round", 0), r[sort_by]))
