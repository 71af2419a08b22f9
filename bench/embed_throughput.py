"""Embedding throughput on CPU: all-MiniLM-L6-v2 as the packaged int8 ONNX build (onnxruntime +
tokenizers, thresher's `OnnxEncoder`) against sentence-transformers fp32 (torch), same texts, same
threads, each in its own subprocess (which also gives its peak RSS and its model load time).

Corpora (real text from ../shared/data):
- "c4": the 200 C4 sample documents (most are cut at the model's 256 tokens);
- "alpaca": the first 1,000 records of alpaca_5000.json rendered as thresher renders instructions
  (instruction, input, output), shorter texts (~90 tokens at the median).
Both are embedded `--repeat` times (repetition adds volume, not variety: the same texts again).
Vectors of the two backends are compared (cosine per text). The headline is the docs/s ratio.

    python bench/embed_throughput.py [--threads 2] [--repeat 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import SHARED_DATA, c4_sample  # noqa: E402


def alpaca_texts(n: int = 1000) -> list[str]:
    records = json.loads((SHARED_DATA / "alpaca_5000.json").read_text(encoding="utf-8"))[:n]
    return [f"{r['instruction']}\n\n{r['input']}\n\n{r['output']}" if r.get("input") else
            f"{r['instruction']}\n\n{r['output']}" for r in records]


def worker(backend: str, threads: int, repeat: int, batch_size: int, out: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    from thresher.embeddings.scorer import EmbeddingScorer

    started = time.perf_counter()
    scorer = EmbeddingScorer(backend=backend, threads=threads, batch_size=batch_size, device="cpu")
    scorer.embed(["warm up the model"])
    load = time.perf_counter() - started
    result = {"backend": backend, "load_seconds": round(load, 2), "corpora": {}}
    vectors = {}
    for name, texts in (("c4", c4_sample()), ("alpaca", alpaca_texts())):
        t0 = time.perf_counter()
        for _ in range(repeat):
            encoded = scorer.embed(texts)
        seconds = time.perf_counter() - t0
        vectors[name] = encoded.vectors
        result["corpora"][name] = {"docs": len(texts) * repeat, "seconds": round(seconds, 2),
                                   "docs_per_second": round(len(texts) * repeat / seconds, 1),
                                   "median_tokens": int(np.median(encoded.tokens))}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    np.savez(out.with_suffix(".npz"), **vectors)
    out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.repeat, args.batch_size, Path(args.out))
        return

    import tempfile

    print(f"all-MiniLM-L6-v2 on CPU, {args.threads} thread(s), batch {args.batch_size}; corpora: the 200 real C4 "
          f"documents and 1,000 real Alpaca records, each embedded {args.repeat}x (repetition: volume, not variety)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("onnx", "sentence_transformers"):
            out = Path(tmp) / f"{backend}.json"
            subprocess.run([sys.executable, __file__, "--worker", backend, "--threads", str(args.threads),
                            "--repeat", str(args.repeat), "--batch-size", str(args.batch_size), "--out", str(out)],
                           check=True)
            results[backend] = json.loads(out.read_text())
            with np.load(out.with_suffix(".npz")) as arrays:
                results[backend]["vectors"] = {k: arrays[k] for k in arrays.files}
    onnx, st = results["onnx"], results["sentence_transformers"]
    print(f"\n{'corpus':<8} {'median tok':>10} {'ONNX int8 docs/s':>17} {'ST fp32 docs/s':>15} {'ratio':>7} "
          f"{'cosine min/mean':>16}")
    for name in ("c4", "alpaca"):
        a, b = onnx["corpora"][name], st["corpora"][name]
        cosine = (onnx["vectors"][name] * st["vectors"][name]).sum(axis=1)
        print(f"{name:<8} {a['median_tokens']:>10} {a['docs_per_second']:>17.1f} {b['docs_per_second']:>15.1f} "
              f"{a['docs_per_second'] / b['docs_per_second']:>6.2f}x {cosine.min():>8.4f}/{cosine.mean():.4f}")
    print(f"\nload (first vector): ONNX {onnx['load_seconds']} s, ST {st['load_seconds']} s; "
          f"peak RSS: ONNX {onnx['peak_rss_mb']} MB, ST {st['peak_rss_mb']} MB (both processes import torch "
          "for the device check; the ONNX path itself needs no torch)")


if __name__ == "__main__":
    main()
