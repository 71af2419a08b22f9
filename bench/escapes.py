"""Try each escape of issue 14 against the installed thresher and print what happened.

    python bench/escapes.py            # on this checkout
    PYTHONPATH=<other checkout> python bench/escapes.py   # e.g. an older commit, for a before/after

Each line: the attempt, and "blocked" or "ESCAPED" with what it did. Exit status 1 if anything escaped.
Everything happens in a temporary directory; the "payloads" only create marker files.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")


class Marker:
    """Unpickling this creates a file: proof that a stored pickle ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def build_run(root: Path) -> Path:
    from thresher.config import InputSpec, ScorerSpec
    from thresher.flows.ingest import ingest_flow
    from thresher.flows.score import score_flow

    inputs = root / "inputs"
    inputs.mkdir()
    lines = [json.dumps({"text": f"Document number {i}. " * 20, "url": f"https://example.org/{i}"})
             for i in range(40)]
    (inputs / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = root / "run"
    ingest_flow(str(run), [InputSpec(paths=[str(inputs / "docs.jsonl")])])
    score_flow(str(run), [ScorerSpec(name="heuristics")])
    return run


def attempt_copy_into_run(run: Path, marker: Path) -> str:
    from thresher.storage.catalog import open_catalog
    from thresher.storage.run_dir import RunDir

    target = run / "documents" / "part-evil.parquet"
    try:
        with open_catalog(RunDir(run)) as con:
            con.execute(f"COPY (SELECT * FROM documents LIMIT 2) TO '{target}'")
    except Exception as exc:  # noqa: BLE001 - any refusal is a block
        return f"blocked ({type(exc).__name__}: {str(exc)[:70]})"
    if target.exists():
        return f"ESCAPED: wrote {target.name} ({target.stat().st_size} bytes) into documents/"
    return "blocked"


def attempt_tampered_catalog(run: Path, marker: Path) -> str:
    import duckdb

    from thresher.storage.catalog import open_catalog
    from thresher.storage.run_dir import RunDir

    con = duckdb.connect(str(run / "catalog.duckdb"))
    con.execute("UPDATE thresher_views SET definition = ? WHERE name = 'documents'",
                [f"SELECT 1 AS x; COPY (SELECT 42) TO '{marker}'; SELECT 1"])
    con.close()
    try:
        with open_catalog(RunDir(run)) as reader:
            reader.execute("SELECT count(*) FROM documents").fetchall()
    except Exception as exc:  # noqa: BLE001
        note = f" ({type(exc).__name__})"
    else:
        note = ""
    return f"ESCAPED: opening the catalog wrote {marker}" if marker.exists() else "blocked" + note


def attempt_pickled_result(run: Path, marker: Path) -> str:
    from thresher.config import ScorerSpec
    from thresher.flows.score import score_flow

    records = [p for d in (".prefect-results", ".task-results") for p in (run / d).glob("*") if p.is_file()]
    payload = base64.b64encode(pickle.dumps(Marker(str(marker)))).decode()
    for record in records:
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
        data.setdefault("metadata", {})["serializer"] = {"type": "pickle", "picklelib": "pickle"}
        data["result"] = payload
        record.write_text(json.dumps(data), encoding="utf-8")
    try:
        score_flow(str(run), [ScorerSpec(name="heuristics")])
    except Exception as exc:  # noqa: BLE001
        note = f" (resume failed: {type(exc).__name__})"
    else:
        note = ""
    if marker.exists():
        return f"ESCAPED: resuming the run unpickled a stored result ({len(records)} records tampered)"
    return f"blocked: {len(records)} tampered records recomputed{note}"


def attempt_two_writers(run: Path, marker: Path) -> str:
    """A child process ingests a large file into the run; once it is writing, this process ingests
    into the same run too."""
    from thresher.config import InputSpec
    from thresher.flows.ingest import ingest_flow

    big = run.parent / "inputs" / "more.jsonl"
    lines = (json.dumps({"text": f"Another document, number {i}, with some words in it. " * 8}) for i in range(200000))
    big.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = f"""
from thresher.config import InputSpec
from thresher.flows.ingest import ingest_flow
ingest_flow({str(run)!r}, [InputSpec(paths=[{str(big)!r}])])
"""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "ERROR"}
    first = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    writing = f"tmp-{first.pid}"
    lock = run / ".writer.lock"
    while first.poll() is None:  # until the child holds the lock, or (without one) has a file half-written
        if (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()) or any(
                writing in p.name for p in run.rglob("*")):
            break
        time.sleep(0.05)
    else:
        return f"not tried: the first writer ended first (exit {first.returncode})"
    try:
        ingest_flow(str(run), [InputSpec(paths=[str(big)])])
    except Exception as exc:  # noqa: BLE001
        first.wait()
        if "being written by" in str(exc):
            return "blocked: the second writer was refused, naming the first"
        return f"second writer failed otherwise: {type(exc).__name__}: {str(exc)[:80]}"
    running = first.poll() is None
    first.wait()
    when = "while the first was still writing" if running else "alongside the first"
    return f"ESCAPED: a second writer wrote the run {when} (the first's exit status: {first.returncode})"


def attempt_reader_blocks_rebuild(run: Path, marker: Path) -> str:
    from thresher.storage.catalog import build_catalog, open_catalog
    from thresher.storage.run_dir import RunDir

    with open_catalog(RunDir(run)):
        try:
            build_catalog(RunDir(run))
        except Exception as exc:  # noqa: BLE001
            return f"ESCAPED: an open reader made the rebuild fail ({type(exc).__name__})"
    return "blocked: the rebuild went through with a reader open"


ATTEMPTS = {
    "thresher sql: COPY into <run>/documents by absolute path": attempt_copy_into_run,
    "open a run whose catalog.duckdb was edited (view SQL)": attempt_tampered_catalog,
    "resume a run whose stored task results are pickles": attempt_pickled_result,
    "two writers on one run at once": attempt_two_writers,
    "catalog rebuild while a reader is open": attempt_reader_blocks_rebuild,
}


def main() -> int:
    import thresher

    print(f"thresher from {Path(thresher.__file__).parent}")
    escaped = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, attempt) in enumerate(ATTEMPTS.items()):
            root = Path(tmp) / f"case{i}"
            root.mkdir()
            run = build_run(root)
            outcome = attempt(run, root / "MARKER")
            escaped += outcome.startswith("ESCAPED")
            print(f"| {name} | {outcome} |", flush=True)
    return 1 if escaped else 0


if __name__ == "__main__":
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        code = main()
    sys.exit(code)
