"""Scoring throughput of a distilled head (thresher.embeddings.distill.DistilledScorer): from the
run's embedding sidecar (a matrix-vector product per batch) and from raw text (the head embeds the
text itself with its own embedding settings: embedding-bound).

The head is real: ridge regression on all-MiniLM-L6-v2 (int8 ONNX) embeddings of the first 1,000
Alpaca records of ../shared/data, fitted to thresher's FineWeb list-line ratio of the same records
(a cheap stand-in for a judge score: the head's cost does not depend on what it learned). The
vector corpus repeats those 1,000 vectors to `--rows` rows (volume, not variety).

    python bench/distill_throughput.py [--rows 200000] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from embed_throughput import alpaca_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from thresher.embeddings.distill import DistilledScorer, _embed_params, fit_ridge, save_head
    from thresher.embeddings.scorer import EmbeddingScorer, vectors_to_arrow
    from thresher.scorers.heuristics import HeuristicsScorer

    texts = alpaca_texts(1000)
    ids = pa.array([f"d{i}" for i in range(len(texts))])
    embedder = EmbeddingScorer(backend="onnx", threads=args.threads, device="cpu")
    vectors = embedder.embed(texts).vectors
    heuristics = HeuristicsScorer().score(pa.record_batch([ids, pa.array(texts, pa.large_string())],
                                                          names=["doc_id", "text"]))
    y = heuristics.column("fineweb_list_ratio").to_numpy(zero_copy_only=False)
    fit, _, _ = fit_ridge(vectors, y, [0.1, 1.0, 10.0], np.arange(len(y)) % 5, 5)
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"name": "bench", "target": "fineweb_list_ratio", "target_range": [float(y.min()), float(y.max())],
                "embedding": {"scorer": "embed@1", "params": _embed_params(embedder),
                              "model_fingerprint": embedder.model_fingerprint,
                              "vector_column": embedder.vector_column, "dimension": embedder.dimension}}
        directory, _ = save_head(Path(tmp) / "distilled_bench", fit, meta)
        head = DistilledScorer(head=str(directory))

        repeats = -(-args.rows // len(texts))
        big = np.tile(vectors, (repeats, 1))[: args.rows]
        batches = [pa.record_batch([pa.array([f"r{i}" for i in range(s, min(s + 8192, args.rows))]),
                                    vectors_to_arrow(big[s : s + 8192])], names=["doc_id", embedder.vector_column])
                   for s in range(0, args.rows, 8192)]
        head.score(batches[0])
        t0 = time.perf_counter()
        for batch in batches:
            head.score(batch)
        from_vectors = args.rows / (time.perf_counter() - t0)

        text_batch = pa.record_batch([ids, pa.array(texts, pa.large_string())], names=["doc_id", "text"])
        head.score(text_batch.slice(0, 8))
        t0 = time.perf_counter()
        head.score(text_batch)
        from_text = len(texts) / (time.perf_counter() - t0)

    print(f"distilled head (ridge on 384-d MiniLM int8 embeddings), {args.threads} thread(s):")
    print(f"  from the embedding sidecar: {from_vectors:,.0f} rows/s over {args.rows:,} rows "
          "(1,000 real Alpaca vectors repeated)")
    print(f"  from raw text (embeds first): {from_text:,.1f} rows/s over 1,000 real Alpaca records")
    print(f"  ratio sidecar / text: {from_vectors / from_text:,.0f}x")


if __name__ == "__main__":
    main()
