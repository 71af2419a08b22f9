"""Judging over HTTP: rows/s of the OpenAI-compatible backend at concurrency 1, 4 and 16 against a
real local server (`transformers serve` with the packaged SmolLM2-135M on 127.0.0.1), with and
without the server's continuous batching, next to the in-process transformers backend on the same
rows. The workload is the AlpaGasus judge in generate mode (the reply's first line, at most 8
tokens) over real Alpaca rows; no judgment cache.

    .venv/bin/python bench/http_backend.py [--rows 32] [--levels 1,4,16] [--no-cb]

The machine is shared: expect run-to-run differences of 20-50 %. Prints one JSON line per
measurement and a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thresher.judges.judges import AlpaGasusJudge  # noqa: E402
from thresher.llm.openai_http import wait_for_server  # noqa: E402
from thresher.llm.packaged import resolve_llm  # noqa: E402

SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: str, continuous_batching: bool) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    cache = Path(tempfile.mkdtemp(prefix="hf-hub-"))
    log = cache / "serve.log"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "TQDM_DISABLE": "1"}
    args = [str(Path(sys.executable).parent / "transformers"), "serve", model_dir, "--host", "127.0.0.1",
            "--port", str(port), "--device", "cpu", "--log-level", "error"]
    if continuous_batching:
        args.append("--continuous-batching")
    proc = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    root = f"http://127.0.0.1:{port}"
    wait_for_server(root, timeout=180, path="/health")
    return proc, root, log


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(judge: AlpaGasusJudge, rows: list[dict]) -> dict:
    started = time.perf_counter()
    judged = judge.judge_rows(rows)
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds, 2),
            "parse_errors": sum(1 for j in judged if j.parse_error)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--no-cb", action="store_true", help="skip the continuous-batching server")
    args = parser.parse_args()
    records = json.loads((SHARED / "alpaca_sample.json").read_text())[: args.rows * 2]
    levels = [int(x) for x in args.levels.split(",")]
    model_dir = str(resolve_llm("smollm2-135m-instruct"))
    summary = []
    common = dict(mode="generate", max_input_tokens=128, prompt_version=2)

    local = AlpaGasusJudge(model="smollm2-135m-instruct", backend_options={"dtype": "float32"}, **common)
    local.judge_rows([{"instruction": "warm up", "input": "", "output": "ok"}])
    rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in records[: args.rows]]
    result = {"backend": "transformers (in-process, float32, batches of 8)", "concurrency": "-", **measure(local, rows)}
    print(json.dumps(result), flush=True)
    summary.append(result)

    for cb in ([False] if args.no_cb else [False, True]):
        proc, root, log = start_server(model_dir, cb)
        try:
            for k, level in enumerate(levels):
                http = {"base_url": root + "/v1", "concurrency": level, "timeout": 600,
                        "tokenizer": "smollm2-135m-instruct"}
                judge = AlpaGasusJudge(model=model_dir, backend="openai", backend_options=http, **common)
                judge.judge_rows([{"instruction": "warm up", "input": "", "output": "ok"}])
                # fresh rows per level, so no server-side prefix reuse flatters a later level
                part = records[(k % 2) * args.rows:(k % 2 + 1) * args.rows]
                rows = [{key: r[key] for key in ("instruction", "input", "output")} for r in part]
                result = {"backend": f"openai -> transformers serve{' --continuous-batching' if cb else ''}",
                          "concurrency": level, **measure(judge, rows)}
                print(json.dumps(result), flush=True)
                summary.append(result)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other server
            print(json.dumps({"backend": f"transformers serve cb={cb}", "error": repr(exc)[:300],
                              "log_tail": log.read_text()[-500:]}), flush=True)
        finally:
            stop(proc)

    print("\n| backend | concurrency | rows | seconds | rows/s |\n|---|---|---|---|---|")
    for r in summary:
        print(f"| {r['backend']} | {r['concurrency']} | {r['rows']} | {r['seconds']} | {r['rows_per_s']} |")


if __name__ == "__main__":
    main()
