"""Likelihood as a judge: does a small LM's perplexity of a reply tell the preferred one apart?

The IFD scorer (thresher.judges.ifd) computes, for an instruction and its answer, the answer's
perplexity given the instruction (conditional), alone (answer-only), and their ratio (IFD, Cherry
LLM). Here each reply of a preference pair is scored that way, with the conversation's tail as the
instruction (2,000 characters, as the judges read it), and a pair goes to the reply with the lower
perplexity (the usual reading: the model finds it more natural) or the lower / higher IFD (both
shown: for two replies to one prompt neither direction is established). Reported on the held-out
halves of the shipped sets (tests/data/preferences), next to "the longer reply wins" on the same
pairs and on the length-matched ones among them (replies within ±20 %). No direction is fitted.

    .venv/bin/python bench/likelihood_agreement.py [--model smollm2-135m-instruct] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thresher.judges.agreement import (  # noqa: E402
    conversation_tail,
    length_outcomes,
    load_pairs,
    pair_outcomes,
    select,
)

SETS = {"dpo_en": REPO / "tests" / "data" / "preferences" / "dpo_en.jsonl",
        "oasst2_en": REPO / "tests" / "data" / "preferences" / "oasst2_en.jsonl"}
SIGNALS = {  # name -> the value where higher means preferred
    "lower conditional perplexity": lambda r: -r["ppl_cond"] if r["ppl_cond"] else None,
    "lower answer-only perplexity": lambda r: -r["ppl_answer"] if r["ppl_answer"] else None,
    "lower IFD": lambda r: -r["ifd"] if r["ifd"] else None,
    "higher IFD": lambda r: r["ifd"] if r["ifd"] else None,
}


def share(outcomes: list[float]) -> str:
    return f"{sum(outcomes) / len(outcomes):.1%}" if outcomes else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N held-out pairs of each set")
    args = parser.parse_args()

    import torch

    from thresher.judges.ifd import IFDScorer

    torch.set_num_threads(args.threads)
    scorer = IFDScorer(model=args.model, max_question_tokens=384, max_answer_tokens=256, batch_size=8)
    print(f"model {args.model}, torch threads {args.threads}; a pair's outcome: 1 chosen wins, 0.5 tie, 0 rejected\n")
    print("| set, held-out | signal | agreement | length-matched |\n|---|---|---|---|")
    for name, path in SETS.items():
        pairs = select(load_pairs(path), "heldout")[: args.limit]
        started = time.perf_counter()
        rows = []
        for pair in pairs:
            prompt = conversation_tail(pair.conversation, 2000)
            rows += [{"doc_id": f"{pair.id}/{side}", "instruction": prompt, "input": "", "output": reply}
                     for side, reply in (("chosen", pair.chosen), ("rejected", pair.rejected))]
        scored = scorer.score_rows(rows)
        seconds = time.perf_counter() - started
        matched = [pair.length_matched for pair in pairs]
        length = length_outcomes(pairs)
        print(f"| {name} (N={len(pairs)}, {len(rows) / seconds:.1f} replies/s) | longer reply wins | {share(length)} | "
              f"{share([o for o, m in zip(length, matched) if m])} (N={sum(matched)}) |")
        for signal, value in SIGNALS.items():
            outcomes = pair_outcomes([value(scored[2 * i]) for i in range(len(pairs))],
                                     [value(scored[2 * i + 1]) for i in range(len(pairs))])
            print(f"| | {signal} | {share(outcomes)} | {share([o for o, m in zip(outcomes, matched) if m])} |")


if __name__ == "__main__":
    main()
