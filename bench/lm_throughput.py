"""Causal-LM perplexity throughput on CPU: tokens/s at batch sizes 1, 8 and 32, in one run.

Models: SmolLM2-135M-Instruct (the packaged GGUF, converted once into thresher's model cache) and
a proxy LM of `train_proxy`'s default shape (4 layers, 256 wide, 8k BPE vocabulary; trained for a
few steps here: throughput depends on the shape, not on the training).

Documents: paragraphs of the Wikipedia sample, each scored up to `--max-tokens` tokens, so every
batch size scores exactly the same tokens; `max_batch_tokens` is set high enough that `batch_size`
alone decides the packing. Each setting is timed after a warm-up batch (model load excluded, and
reported apart), best of `--repeats`.

    python bench/lm_throughput.py [--docs 32] [--max-tokens 128] [--threads N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow as pa  # noqa: E402

from tests.perplexity.perplexity_data import evaluation_paragraphs, training_articles  # noqa: E402
from thresher.perplexity.lm_scorer import CausalLMPerplexityScorer  # noqa: E402

BATCH_SIZES = (1, 8, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    if not (SHARED / "wikipedia_sample.txt").is_file():
        sys.exit(f"needs the real samples in {SHARED}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = evaluation_paragraphs(SHARED, count=args.docs)
    batch = pa.record_batch({"doc_id": pa.array([str(i) for i in range(len(texts))]),
                             "text": pa.array(texts, pa.large_string())})
    print(f"{len(texts)} Wikipedia paragraphs, at most {args.max_tokens} tokens each; CPU, "
          f"{torch.get_num_threads()} torch thread(s); best of {args.repeats}")

    with tempfile.TemporaryDirectory() as tmp:
        models = []
        if not args.skip_smollm2:
            models.append(("SmolLM2-135M-Instruct", "smollm2-135m-instruct"))
        from thresher.perplexity.train_proxy import train_proxy

        started = time.perf_counter()
        proxy = train_proxy(training_articles(SHARED)[:200], Path(tmp) / "proxy", steps=5, seed=0)
        print(f"proxy LM (default shape) built in {time.perf_counter() - started:.1f} s")
        models.append(("proxy LM 4x256, 8k vocab", str(proxy)))

        rows = []
        for label, model in models:
            load_started = time.perf_counter()
            CausalLMPerplexityScorer(model=model).runtime()
            load = time.perf_counter() - load_started
            params = sum(p.numel() for p in CausalLMPerplexityScorer(model=model).runtime().model.parameters())
            for batch_size in BATCH_SIZES:
                scorer = CausalLMPerplexityScorer(model=model, batch_size=batch_size, max_tokens=args.max_tokens,
                                                  max_batch_tokens=batch_size * (args.max_tokens + 1))
                tokens = sum(scorer.score(batch).column("lm_tokens").to_pylist())  # warm-up
                best = min(_timed(scorer, batch) for _ in range(args.repeats))
                rows.append((label, params, load, batch_size, tokens / best, len(texts) / best))
                print(f"  {label:26s} batch {batch_size:>2}: {tokens / best:8,.0f} tokens/s "
                      f"({len(texts) / best:6.1f} docs/s)", flush=True)

    print("\nmodel                       params   load s   batch   tokens/s   vs batch 1")
    for label, params, load, batch_size, tps, _ in rows:
        base = next(r[4] for r in rows if r[0] == label and r[3] == 1)
        print(f"{label:26s} {params / 1e6:6.1f}M  {load:7.1f}   {batch_size:>5}   {tps:8,.0f}   {tps / base:8.2f}x")


def _timed(scorer: CausalLMPerplexityScorer, batch: pa.RecordBatch) -> float:
    started = time.perf_counter()
    scorer.score(batch)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
