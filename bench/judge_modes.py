"""Expected-score judging against generate-and-parse, with the packaged Qwen2.5-Coder-0.5B:
rows/s, the speed ratio (goal >= 5x), and AUC on real data for each judge and mode.

- instruction judges (AlpaGasus, UltraFeedback, DEITA quality): N real Alpaca answers against N
  degraded copies (swapped with another row's answer, cut to four words, words shuffled);
- educational value (FineWeb-Edu): N Wikipedia article openings against N C4 pages.

Expected mode is measured with the backend's prefix cache on (the default) and off, so its
contribution shows. Every judgment is computed (no judgment cache). The machine is shared: expect
20-50 % run-to-run variation in rows/s; AUCs are deterministic for a given dtype.

    .venv/bin/python bench/judge_modes.py [--n 24] [--judges alpagasus,edu] [--dtype auto|float32|bfloat16]
                                          [--max-batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thresher.judges.degrade import degraded_pairs  # noqa: E402
from thresher.judges.judges import build_judge  # noqa: E402
from thresher.judges.metrics import roc_auc  # noqa: E402

SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
MODEL = "qwen2.5-coder-0.5b-instruct"


def reference(task: str, n: int, seed: int) -> tuple[list[dict], list[int]]:
    if task == "edu":
        wiki = [line for line in (SHARED / "wikipedia_sample.txt").read_text().splitlines() if len(line) > 1500][:n]
        c4 = [json.loads(line)["text"] for line in (SHARED / "c4_sample.jsonl").read_text().splitlines()]
        c4 = [t for t in c4 if len(t) > 800][:n]
        return [{"text": t} for t in wiki + c4], [1] * len(wiki) + [0] * len(c4)
    records = json.loads((SHARED / "alpaca_sample.json").read_text())
    rows = degraded_pairs(records, n, seed=seed, max_words=80)
    return [r.fields() for r in rows], [r.label for r in rows]


def run(judge, rows, labels) -> dict:
    started = time.perf_counter()
    judged = judge.judge_rows(rows)
    seconds = time.perf_counter() - started
    scores = [float("nan") if j.score is None else j.score for j in judged]
    return {"rows": len(rows), "seconds": round(seconds, 1), "rows_per_s": round(len(rows) / seconds, 3),
            "auc": round(roc_auc(scores, labels), 3), "parse_errors": sum(1 for j in judged if j.parse_error),
            "distinct_scores": len({round(s, 3) for s in scores if s == s})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24, help="pairs (instruction judges) / documents per class (edu)")
    parser.add_argument("--judges", default="alpagasus,ultrafeedback,deita_quality,edu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=8,
                        help="rows per forward pass / generate call (1: one request at a time, as a server without "
                        "batching would run them)")
    args = parser.parse_args()
    options = {"dtype": args.dtype, "max_batch_size": args.max_batch_size}
    table = []
    for task in args.judges.split(","):
        rows, labels = reference(task, args.n, args.seed)
        budget = 320 if task == "edu" else 160
        expected = build_judge(task, model=MODEL, backend_options=options, max_input_tokens=budget)
        backend = expected.get_backend()
        _ = backend.model
        results = {}
        results["expected"] = run(expected, rows, labels)
        backend.prefix_cache = False
        results["expected, no prefix cache"] = run(expected, rows, labels)
        backend.prefix_cache = True
        generate = build_judge(task, model=MODEL, backend_options=options, max_input_tokens=budget, mode="generate")
        results["generate"] = run(generate, rows, labels)
        ratio = results["expected"]["rows_per_s"] / results["generate"]["rows_per_s"]
        for mode, r in results.items():
            line = {"judge": task, "mode": mode, "dtype": backend.dtype, "batch": args.max_batch_size, **r}
            print(json.dumps(line), flush=True)
            table.append(line)
        print(json.dumps({"judge": task, "expected_over_generate": round(ratio, 2)}), flush=True)
        table.append({"judge": task, "mode": "ratio expected/generate", "ratio": round(ratio, 2)})
    print("\n| judge | mode | rows | rows/s | AUC | parse errors | distinct scores |\n|---|---|---|---|---|---|---|")
    for t in table:
        if "ratio" in t:
            print(f"| {t['judge']} | **expected / generate speed** | | **{t['ratio']}x** | | | |")
        else:
            print(f"| {t['judge']} | {t['mode']} | {t['rows']} | {t['rows_per_s']} | {t['auc']} | "
                  f"{t['parse_errors']} | {t['distinct_scores']} |")


if __name__ == "__main__":
    main()
