"""What train-and-compare costs on this machine: training tokens per second of the eval's small LM
for the default settings and the tests' settings, on one and on two threads, and from them the
seconds per 1 M training tokens per model and for a whole comparison (arms x seeds).

There is no peer to race here (no curation framework ships train-and-compare); the point is the
cost a user pays, measured, for the README.

    .venv/bin/python bench/eval_cost.py [--steps 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from thresher.eval.config import EvalConfig, EvalSetSpec, TinyLMSettings, TrainSettings
from thresher.eval.lm import build_model, window_loss
from thresher.eval.tokens import load_tokenizer, train_bpe

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "wikipedia_sample.txt"
CONFIGS = {
    "default (2 layers, 64 wide, BPE 512)": TinyLMSettings(),
    "tests (1 layer, 64 wide, BPE 512)": TinyLMSettings(layers=1),
    "larger (4 layers, 128 wide, BPE 512)": TinyLMSettings(layers=4, hidden=128),
}


def tokens_per_second(settings: TinyLMSettings, vocab: int, eos: int, stream: np.ndarray, steps: int,
                      threads: int) -> float:
    torch.set_num_threads(threads)
    model = build_model(settings, vocab, eos, 0)
    config = EvalConfig(name="b", selections=["s"], eval_sets=[EvalSetSpec(name="e", paths=["x"])], model=settings)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    batch, context = config.train.batch_size, settings.context
    windows = (stream.size - 1) // context
    rng = np.random.default_rng(0)

    def step() -> None:
        rows = rng.integers(0, windows, batch)
        x = torch.from_numpy(np.stack([stream[w * context: w * context + context + 1] for w in rows]).astype(np.int64))
        loss = window_loss(model, x, "cpu")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * context / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    text = DATA.read_text(encoding="utf-8")
    out = Path("/tmp/thresher-bench-eval-tokenizer.json")
    train_bpe([text[i: i + 5000] for i in range(0, len(text), 5000)], 512, out)
    tokenizer = load_tokenizer("bpe", out)
    stream = tokenizer.encode(text)
    train = TrainSettings()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available; "
          f"{train.steps} steps x {train.batch_size} windows per model by default")
    print(f"{'config':40} {'threads':>7} {'tokens/s':>9} {'s per 1M tokens':>16} {'s per default model':>20} "
          f"{'3 arms x 3 seeds':>17}")
    for label, settings in CONFIGS.items():
        for threads in (1, 2):
            rate = tokens_per_second(settings, tokenizer.vocab_size, tokenizer.eos_id, stream, args.steps, threads)
            per_model = train.steps * train.batch_size * settings.context / rate
            print(f"{label:40} {threads:>7} {rate:>9,.0f} {1e6 / rate:>16.1f} {per_model:>20.1f} "
                  f"{9 * per_model:>17.0f}")


if __name__ == "__main__":
    main()
