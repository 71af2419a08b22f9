"""The judge over HTTP against llama.cpp's `llama-server` vs in process: rows/s, agreement, memory.

Workload: the AlpaGasus judge in expected mode (one forward pass, the score digits' probabilities
from `top_logprobs`) on real Alpaca rows, replies cut to --max-input-tokens, no judgment cache.
Contenders, one after the other on the same rows and the same packaged Qwen2.5-Coder-0.5B-Instruct
weights:
- local: the transformers backend in this process (the GGUF dequantised to float32, the default);
- server: `llama-server` (built by `make llama-server`) serving the same Q4_K_M GGUF on 127.0.0.1
  with --threads threads and --slots parallel slots, judged through the OpenAI-compatible backend at
  concurrency = slots.
Reported: rows/s, the largest score difference and the correlation with the local scores, and peak
RSS (the server's process, sampled; this process's ru_maxrss for local).

    .venv/bin/python bench/llama_server_judge.py [--rows 24] [--threads 2] [--slots 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.llm.servers import free_port  # noqa: E402
from thresher.judges.judges import build_judge  # noqa: E402
from thresher.llm.openai_http import wait_for_server  # noqa: E402
from thresher.llm.packaged import DEFAULT_JUDGE_MODEL, gguf_path  # noqa: E402

LLAMA_SERVER = REPO / ".tools" / "bin" / "llama-server"
ALPACA = REPO / "tests" / "data" / "alpaca_sample.json"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples a process's RSS every 0.1 s in a thread while in the `with` block."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def judge(judge_obj, rows) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    scores = np.array([j.score for j in judge_obj.judge_rows(rows)], dtype=float)
    return scores, time.perf_counter() - started


def serve(threads: int, slots: int):
    port = free_port()
    proc = subprocess.Popen(
        [str(LLAMA_SERVER), "-m", str(gguf_path(DEFAULT_JUDGE_MODEL)), "--alias", "judge", "--host", "127.0.0.1",
         "--port", str(port), "-c", str(2048 * slots), "-np", str(slots), "-t", str(threads), "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_server(f"http://127.0.0.1:{port}", timeout=120, path="/health")
    return proc, f"http://127.0.0.1:{port}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-input-tokens", type=int, default=192)
    args = parser.parse_args()
    if not LLAMA_SERVER.exists():
        sys.exit(f"{LLAMA_SERVER} is missing: run `make llama-server`")
    import torch

    torch.set_num_threads(args.threads)
    records = json.loads(ALPACA.read_text())[: args.rows]
    rows = [{"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]} for r in records]
    print(f"{len(rows)} Alpaca rows, AlpaGasus expected mode, replies cut to {args.max_input_tokens} tokens, "
          f"{args.threads} threads; load {os.getloadavg()[0]:.1f}")

    local_judge = build_judge("alpagasus", model=DEFAULT_JUDGE_MODEL, max_input_tokens=args.max_input_tokens)
    local_judge.judge_rows(rows[:1])  # load the model outside the clock
    local, seconds = judge(local_judge, rows)
    table = [("local transformers (float32)", len(rows) / seconds, 0.0, 1.0,
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)]
    for slots in args.slots:
        proc, base_url = serve(args.threads, slots)
        try:
            http_judge = build_judge("alpagasus", model="judge", backend="openai",
                                     max_input_tokens=args.max_input_tokens,
                                     backend_options={"base_url": base_url, "logprobs": True, "top_logprobs": 20,
                                                      "prefill": "trailing-assistant", "concurrency": slots,
                                                      "tokenizer": DEFAULT_JUDGE_MODEL})
            with PeakRss(proc.pid) as rss:
                remote, seconds = judge(http_judge, rows)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        table.append((f"llama-server Q4_K_M, {slots} slot(s)", len(rows) / seconds,
                      float(np.abs(remote - local).max()), float(np.corrcoef(remote, local)[0, 1]), rss.peak))
    print("\n| contender | rows/s | x local | max score difference | correlation | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, rate, diff, corr, rss in table:
        print(f"| {name} | {rate:.2f} | {rate / table[0][1]:.2f}x | {diff:.3f} | {corr:.3f} | {rss:.0f} |")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
