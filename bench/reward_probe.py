"""A linear reward probe on the judge's own hidden state: does the 0.5B model know which reply is better?

bench/reward_head.py fits a Bradley-Terry head on frozen sentence embeddings; this one reads the
packaged Qwen2.5-Coder-0.5B-Instruct's last-layer hidden state at the last token of the chat
(user: the prompt's tail, assistant: the reply), float32 on CPU, and fits the same head
(bench/reward_head.fit_bradley_terry) on the difference between the chosen and the rejected
reply's states. Fitted on the first --train UltraFeedback pairs, reported on held-out
UltraFeedback pairs and the dpo_en held-out half, next to "the longer reply wins" and on
length-matched pairs, for several penalties (none chosen on held-out data).

    .venv/bin/python bench/reward_probe.py --train-file uf_train.jsonl --eval-file uf_eval.jsonl \\
        [--train 250] [--eval 100] [--max-tokens 320]

UltraFeedback pairs: see bench/reward_head.py. One forward pass per reply: about 1.5 s per text on
2 busy cores at 320 tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from reward_head import _jsonl_pairs, _shipped_pairs, agreement, fit_bradley_terry  # noqa: E402

from thresher.judges.agreement import is_length_matched  # noqa: E402
from thresher.llm.packaged import DEFAULT_JUDGE_MODEL, resolve_llm  # noqa: E402

PROMPT_CHARS = 1200


class HiddenStates:
    """The model's last hidden state at the final token of (prompt, reply) chats, in batches."""

    def __init__(self, model_ref: str, threads: int, max_tokens: int, batch: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        directory = resolve_llm(model_ref)
        self.torch, self.max_tokens, self.batch = torch, max_tokens, batch
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.tokenizer.padding_side = "left"  # the last position is every row's final token
        self.model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()

    def __call__(self, chats: list[tuple[str, str]]) -> np.ndarray:
        texts = [self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt[-PROMPT_CHARS:]}, {"role": "assistant", "content": reply}],
            tokenize=False) for prompt, reply in chats]
        out = []
        for start in range(0, len(texts), self.batch):
            encoded = self.tokenizer(texts[start:start + self.batch], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_tokens)
            with self.torch.no_grad():
                out.append(self.model.model(**encoded).last_hidden_state[:, -1, :].float().numpy())
        return np.vstack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-file", type=Path, required=True)
    parser.add_argument("--eval-file", type=Path, required=True)
    parser.add_argument("--train", type=int, default=250)
    parser.add_argument("--eval", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--l2", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0])
    parser.add_argument("--features", type=Path, help="an .npz to keep the hidden-state differences in "
                        "(read instead of recomputed when it exists)")
    args = parser.parse_args()

    sets = {"train": _jsonl_pairs(args.train_file)[: args.train],
            "UltraFeedback eval": _jsonl_pairs(args.eval_file)[: args.eval],
            "dpo_en held-out": _shipped_pairs("dpo_en", "heldout")[: args.eval]}
    started = time.perf_counter()
    diffs, lengths, matched = {}, {}, {}
    saved = dict(np.load(args.features)) if args.features and args.features.exists() else {}
    states = None if saved else HiddenStates(DEFAULT_JUDGE_MODEL, args.threads, args.max_tokens)
    for name, pairs in sets.items():
        if name in saved:
            diffs[name] = saved[name]
        else:
            diffs[name] = states([(p, c) for p, c, _ in pairs]) - states([(p, r) for p, _, r in pairs])
        lengths[name] = np.array([np.log1p(len(c)) - np.log1p(len(r)) for _, c, r in pairs])
        matched[name] = np.array([is_length_matched(c, r) for _, c, r in pairs], dtype=bool)
        print(f"{name}: {len(pairs)} pairs embedded, {time.perf_counter() - started:.0f} s", flush=True)

    if args.features and not saved:
        np.savez(args.features, **diffs)
    held = [name for name in sets if name != "train"]
    header = " | ".join(f"{n} (N={len(sets[n])}) | matched (N={int(matched[n].sum())})" for n in held)
    print(f"| head | {header} |")
    print("|---|" + "---|---|" * len(held))
    print("| longer reply wins | " + " | ".join(
        f"{agreement(lengths[n]):.1%} | {agreement(lengths[n][matched[n]]):.1%}" for n in held) + " |")
    for l2 in args.l2:
        weights = fit_bradley_terry(diffs["train"], l2)
        cells = [f"{agreement(diffs[n] @ weights):.1%} | {agreement((diffs[n] @ weights)[matched[n]]):.1%}"
                 for n in held]
        print(f"| probe, l2 {l2:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
