"""A learned reward head on frozen sentence embeddings: does it tell the preferred reply apart?

Issue 15 asks whether weights learned on labels close the gap that no 0.5B prompt closes. This is
the cheapest learned judge there is: embed the prompt and each reply with the packaged MiniLM
(thresher.embeddings, int8 ONNX on CPU), and fit a Bradley-Terry head on the difference of the
two replies' features (L2 logistic regression over both orientations of every training pair, no
intercept to learn: thresher.judges.fitting.logistic_fit). Features of a reply: its embedding (e),
the elementwise product with the prompt's embedding (i: answer-instruction interaction), their
cosine (c), and log characters (l). Reported on held-out pairs it never saw, next to "the longer
reply wins" on the same pairs and on length-matched pairs (replies within ±20 %):

- `--train FILE` (JSONL of prompt/chosen/rejected, e.g. UltraFeedback binarized) fits the head,
  with `--eval FILE` held out in the same format;
- the two shipped sets (tests/data/preferences: dpo_en, oasst2_en) are always reported on their
  held-out halves; `--add-tune` also fits on their tune halves.

    .venv/bin/python bench/reward_head.py --train uf_train.jsonl --eval uf_eval.jsonl [--add-tune]

UltraFeedback pairs: data/processed/{train,eval}_clean.jsonl of github.com/kkminions888-ops/
ultrafeedback-dpo-noise-study (1,000 + 200 pairs drawn from trl-lib/ultrafeedback_binarized, MIT).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thresher.embeddings.models import get_encoder  # noqa: E402
from thresher.judges.agreement import is_length_matched, load_pairs  # noqa: E402
from thresher.judges.fitting import logistic_fit  # noqa: E402

PAIR_SETS = {name: REPO / "tests" / "data" / "preferences" / f"{name}.jsonl" for name in ("dpo_en", "oasst2_en")}
FEATURE_SETS = ("e", "el", "eil", "eicl")
PROMPT_CHARS = 2000  # the tail of the user's turns: what the reply answers


def _jsonl_pairs(path: Path) -> list[tuple[str, str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [(r["prompt"], r["chosen"], r["rejected"]) for r in map(json.loads, handle) if r]


def _shipped_pairs(name: str, split: str) -> list[tuple[str, str, str]]:
    out = []
    for pair in load_pairs(PAIR_SETS[name]):
        if pair.split == split:
            prompt = "\n".join(text for role, text in pair.conversation if role == "user")[-PROMPT_CHARS:]
            out.append((prompt, pair.chosen, pair.rejected))
    return out


class Embedded:
    """The embeddings and lengths of a set of pairs, computed once (or read from `cache`, an .npz
    this script wrote for the same pairs and model)."""

    def __init__(self, encoder, pairs: list[tuple[str, str, str]], cache: Path | None = None):
        if cache is not None and cache.exists():
            with np.load(cache) as stored:
                self.prompt, self.chosen, self.rejected = stored["prompt"], stored["chosen"], stored["rejected"]
        else:
            self.prompt = encoder().encode([p for p, _, _ in pairs]).vectors
            self.chosen = encoder().encode([c for _, c, _ in pairs]).vectors
            self.rejected = encoder().encode([r for _, _, r in pairs]).vectors
            if cache is not None:
                np.savez(cache, prompt=self.prompt, chosen=self.chosen, rejected=self.rejected)
        self.chosen_chars = np.log1p([len(c) for _, c, _ in pairs])
        self.rejected_chars = np.log1p([len(r) for _, _, r in pairs])
        self.matched = np.array([is_length_matched(c, r) for _, c, r in pairs], dtype=bool)

    def _features(self, reply: np.ndarray, chars: np.ndarray, kinds: str) -> np.ndarray:
        parts = []
        if "e" in kinds:
            parts.append(reply)
        if "i" in kinds:
            parts.append(self.prompt * reply)
        if "c" in kinds:
            parts.append((self.prompt * reply).sum(axis=1, keepdims=True))
        if "l" in kinds:
            parts.append(chars[:, None])
        return np.hstack(parts)

    def difference(self, kinds: str) -> np.ndarray:
        return (self._features(self.chosen, self.chosen_chars, kinds)
                - self._features(self.rejected, self.rejected_chars, kinds))


def fit_head(train: list[Embedded], kinds: str, l2: float) -> np.ndarray:
    return fit_bradley_terry(np.vstack([e.difference(kinds) for e in train]), l2)


def fit_bradley_terry(x: np.ndarray, l2: float) -> np.ndarray:
    """Weights on raw feature differences (chosen minus rejected); fitted on differences divided by
    their spread, so one L2 penalty treats every feature alike."""
    spread = x.std(axis=0) + 1e-12
    x = x / spread
    weights, _ = logistic_fit(np.vstack([x, -x]), np.r_[np.ones(len(x)), np.zeros(len(x))], l2=l2)
    return weights / spread


def agreement(margins: np.ndarray) -> float:
    """Share of pairs where the chosen reply scores higher (a tie counts half)."""
    return float(np.mean((margins > 0) + 0.5 * (margins == 0))) if len(margins) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, help="JSONL prompt/chosen/rejected pairs to fit on")
    parser.add_argument("--eval", type=Path, help="JSONL pairs held out, same format")
    parser.add_argument("--add-tune", action="store_true", help="also fit on the shipped sets' tune halves")
    parser.add_argument("--l2", type=float, nargs="+", default=[1e-2, 1e-1, 1.0])
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, help="keep each set's embeddings here (keyed by its text and model)")
    args = parser.parse_args()
    if args.train is None and not args.add_tune:
        parser.error("nothing to fit on: give --train and/or --add-tune")

    def encoder():
        return get_encoder(args.model, onnx_file=None, backend="auto", device="cpu", dtype="auto",
                           max_seq_length=None, batch_size=32, threads=args.threads, trust_remote_code=False,
                           fingerprint=None)

    def embedded(pairs: list[tuple[str, str, str]]) -> Embedded:
        cache = None
        if args.cache_dir is not None:
            args.cache_dir.mkdir(parents=True, exist_ok=True)
            key = hashlib.sha256(json.dumps([args.model, pairs]).encode()).hexdigest()[:16]
            cache = args.cache_dir / f"{key}.npz"
        return Embedded(encoder, pairs, cache)

    started = time.perf_counter()
    train_sets = {}
    if args.train:
        train_sets["train"] = _jsonl_pairs(args.train)
    if args.add_tune:
        train_sets.update({f"{name} tune": _shipped_pairs(name, "tune") for name in PAIR_SETS})
    held_sets = {f"{name} held-out": _shipped_pairs(name, "heldout") for name in PAIR_SETS}
    if args.eval:
        held_sets = {"eval": _jsonl_pairs(args.eval), **held_sets}
    train = [embedded(pairs) for pairs in train_sets.values()]
    held = {name: embedded(pairs) for name, pairs in held_sets.items()}
    n_texts = 3 * (sum(map(len, train_sets.values())) + sum(map(len, held_sets.values())))
    print(f"fit on {', '.join(f'{k} ({len(v)})' for k, v in train_sets.items())}; embedded {n_texts} texts "
          f"(or read them) in {time.perf_counter() - started:.0f} s with {args.model}")

    header = "| features | l2 | " + " | ".join(f"{name} (N={len(held_sets[name])}) | matched" for name in held) + " |"
    print(header)
    print("|" + "---|" * (2 + 2 * len(held)))
    cells = [f"{agreement(e.chosen_chars - e.rejected_chars):.1%} | "
             f"{agreement((e.chosen_chars - e.rejected_chars)[e.matched]):.1%} (N={int(e.matched.sum())})"
             for e in held.values()]
    print("| longer reply wins | - | " + " | ".join(cells) + " |")
    for kinds in FEATURE_SETS:
        for l2 in args.l2:
            weights = fit_head(train, kinds, l2)
            cells = []
            for e in held.values():
                margins = e.difference(kinds) @ weights
                cells.append(f"{agreement(margins):.1%} | {agreement(margins[e.matched]):.1%}")
            print(f"| {kinds} | {l2:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
