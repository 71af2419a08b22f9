"""SIGTERM and Ctrl-C stop a command between batches (thresher.interrupt, thresher.cli.run).

Before: Prefect turned SIGTERM into an exception in the flow, then its thread pool waited for the
running judge task to finish its whole shard (an hour for 5,000 rows on 2 cores), and the default
action left Prefect's temporary server running. A real `thresher judge run` with the packaged
SmolLM2 in a child process: terminated after its first committed batch, it must exit promptly with
143, keep its finished batches, write no partial sidecar, leave no server behind, and resume.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thresher.interrupt import Interrupted, clear_stop, raise_if_stop_requested, request_stop
from thresher.judges.cache import compute_through_cache

ROWS = 24
BATCH = 2


def test_a_stop_request_ends_the_batch_loop_after_the_finished_batch():
    seen: list[list[int]] = []

    def compute(indices: list[int]) -> list[int]:
        seen.append(indices)
        if len(seen) == 2:
            request_stop()  # the signal arrives while the second batch runs
        return indices

    try:
        with pytest.raises(Interrupted, match="run the command again"):
            compute_through_cache({i: f"k{i}" for i in range(20)}, None, 4, compute, lambda *a: a)
    finally:
        clear_stop()
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7]]
    raise_if_stop_requested()  # cleared: nothing raised


def _judged(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as con:
        try:
            return con.execute("SELECT count(*) FROM judgments").fetchone()[0]
        except sqlite3.OperationalError:  # created, table not yet committed
            return 0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_sigterm_stops_a_judge_run_between_batches_and_it_resumes(tmp_path, sample_data):
    records = json.loads((sample_data / "alpaca_5000.json").read_text(encoding="utf-8"))[:ROWS]
    source = tmp_path / "alpaca.json"
    source.write_text(json.dumps(records), encoding="utf-8")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    env.pop("PREFECT_API_URL", None)  # the command starts (and must stop) its own temporary server
    cli = [sys.executable, "-m", "thresher.cli"]
    subprocess.run([*cli, "ingest", str(run), str(source)], env=env, check=True, capture_output=True)
    judge = [*cli, "judge", "run", str(run), "-j", "judge_alpagasus", "--model", "smollm2-135m-instruct",
             "-o", f"batch_size={BATCH}", "-o", "max_input_tokens=96"]
    store = run / "judge_cache" / "judge_alpagasus" / "judgments.sqlite"
    log = tmp_path / "judge.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(judge, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _judged(store) < BATCH:
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "no batch was judged in 4 minutes"
            time.sleep(0.2)
        children = _children(process.pid)  # Prefect's temporary server
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = process.wait(timeout=90)  # it used to judge on to the end of the shard
        stopped_after = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text(errors="replace")
    assert code == 128 + signal.SIGTERM, output[-2000:]
    assert "run the same command again to resume" in output
    kept = _judged(store)
    assert BATCH <= kept <= ROWS // 2, f"{kept} judgments after SIGTERM ({stopped_after:.1f} s)"
    assert not list((run / "scores").glob("judge_alpagasus*/*.parquet")), "a sidecar was written for a stopped run"
    time.sleep(1)
    assert children and not any(Path(f"/proc/{pid}").exists() and
                                "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
                                for pid in children), "Prefect's temporary server outlived the command"

    # Resumed, it asks the model only for what the stopped run did not store.
    finished = subprocess.run(judge, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert _judged(store) == ROWS
    assert list((run / "scores").glob("judge_alpagasus*/*.parquet"))
