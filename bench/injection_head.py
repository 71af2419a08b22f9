"""Would a learned injection detector catch what the patterns miss? An experiment, not yet a judge option.

A logistic head over all-MiniLM-L6-v2 sentence embeddings (the packaged int8 ONNX model), fitted
with thresher's own numpy logistic regression on: the development attack set
(tests/data/injection/attacks_blind.jsonl, each attack and each of its sentences, positives
weighted by repetition) against its benign look-alikes and 4,000 sentences of real Alpaca and
ShareGPT answers. A text's score is the highest over its sentences and the whole text. Measured
on the held-out blind set 2 (never tuned on) and on real text the head did not see, alone and
OR-ed with the pattern detector (thresher.judges.detect), at several thresholds:

    .venv/bin/python bench/injection_head.py [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from thresher.judges.agreement import load_pairs  # noqa: E402
from thresher.judges.detect import detect_injection  # noqa: E402
from thresher.judges.injection_head import POSITIVE_REPEAT, fit_injection_head, sentences  # noqa: E402

DATA = REPO / "tests" / "data"
THRESHOLDS = (0.7, 0.8, 0.9, 0.95)


def injection_texts(name: str) -> list[str]:
    lines = (DATA / "injection" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = random.Random(args.seed)
    alpaca = [r["output"] for r in json.loads((DATA / "alpaca_sample.json").read_text())]
    sharegpt = [t["value"] for c in json.loads((DATA / "sharegpt_sample.json").read_text())
                for t in c["conversations"] if t["from"] == "gpt"]
    real_sentences = [s for t in alpaca + sharegpt[:600] for s in sentences(t)]
    rng.shuffle(real_sentences)
    attacks, benign = injection_texts("attacks_blind"), injection_texts("benign_lookalikes")
    fitted = fit_injection_head(attacks, benign + real_sentences[:4000])

    def score(texts: list[str]) -> np.ndarray:
        return np.array(fitted.scores(texts))

    def patterns(texts: list[str]) -> np.ndarray:
        return np.array([detect_injection({"text": t}) is not None for t in texts])

    print(f"fitted on {fitted.trained_on['positives']} attack texts/sentences (x{POSITIVE_REPEAT}) and "
          f"{fitted.trained_on['negatives']} benign ones; seed {args.seed}; "
          f"{time.perf_counter() - started:.0f} s so far", flush=True)
    held_attacks, held_benign = injection_texts("attacks_blind2"), injection_texts("benign_lookalikes2")
    unseen = {
        "Alpaca answers (alpaca_5000, first 1,000)": [r["output"] for r in json.loads(
            (DATA / "alpaca_5000.json").read_text())][:1000],
        "ShareGPT replies not fitted on": sharegpt[600:],
        "preference replies (dpo_en + oasst2_en)": [x for name in ("dpo_en", "oasst2_en") for p in load_pairs(
            DATA / "preferences" / f"{name}.jsonl") for x in (p.chosen, p.rejected)],
        "C4 pages": [json.loads(line)["text"] for line in (DATA / "c4_sample.jsonl").read_text().splitlines()],
    }
    scores = {name: score(texts) for name, texts in [("attacks", held_attacks), ("benign", held_benign),
                                                      *unseen.items()]}
    flagged = {name: patterns(texts) for name, texts in [("attacks", held_attacks), ("benign", held_benign),
                                                          *unseen.items()]}
    head = ["detector", "set 2 attacks caught", "set 2 benign flagged", *unseen]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    rows = [("patterns", {k: v for k, v in flagged.items()})]
    for threshold in THRESHOLDS:
        rows.append((f"head > {threshold}", {k: s > threshold for k, s in scores.items()}))
        rows.append((f"patterns or head > {threshold}", {k: (s > threshold) | flagged[k] for k, s in scores.items()}))
    for name, hits in rows:
        cells = [f"{int(hits[k].sum())}/{len(hits[k])}" for k in ("attacks", "benign", *unseen)]
        print("| " + " | ".join([name, *cells]) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
