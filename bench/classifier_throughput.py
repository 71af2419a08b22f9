"""Scoring throughput on ONE core, side by side on the same real C4 pages: the fastText classifier
(thresher.classifier.ClassifierScorer), the embedding-distilled head (DistilledScorer from raw text:
it must embed, int8 MiniLM ONNX, one thread) and the packaged 0.5B judge (judge_edu, expected-score
mode, one torch thread, a handful of pages: it is slow).

The classifier is trained here on the 200 C4 pages of tests/data against 1,492 WikiText-2
paragraphs (its speed does not depend on what it learned; its size does: dim and bucket are the
defaults). Its corpus repeats the 200 pages to `--rows` (volume, not variety). Run it pinned to one
core for a fair number: `taskset -c 0 python bench/classifier_throughput.py`.

    python bench/classifier_throughput.py [--rows 20000] [--head-docs 200] [--judge-docs 4] [--no-judge]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def c4_pages() -> list[str]:
    return [json.loads(line)["text"] for line in (DATA / "c4_sample.jsonl").open(encoding="utf-8")]


def batch_of(texts: list[str]) -> pa.RecordBatch:
    return pa.record_batch([pa.array([f"d{i}" for i in range(len(texts))]), pa.array(texts, pa.large_string())],
                           names=["doc_id", "text"])


def rate(fn, rows: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return rows / best


def classifier_model(root: Path) -> str:
    import floret

    from thresher.classifier.config import ClassifierConfig
    from thresher.classifier.scorer import save_model
    from thresher.classifier.text import training_lines

    wiki = [line for line in (DATA / "wikitext2_valid.txt").read_text(encoding="utf-8").splitlines()
            if len(line.strip()) > 200]
    pages = c4_pages()
    config = ClassifierConfig(name="bench", target="x")
    (root / "train.txt").write_text("".join(training_lines(wiki + pages, [True] * len(wiki) + [False] * len(pages),
                                                           lowercase=True, max_chars=config.max_chars)))
    ft = config.fasttext
    model = floret.train_supervised(input=str(root / "train.txt"), mode="fasttext", dim=ft.dim, epoch=ft.epoch,
                                    lr=ft.lr, wordNgrams=ft.word_ngrams, minCount=ft.min_count, bucket=ft.bucket,
                                    thread=1, seed=0, verbose=0)
    directory, _ = save_model(root / "classifier_bench", model, {"name": "bench", "text": {
        "lowercase": True, "max_chars": config.max_chars}})
    return str(directory)


def bench_classifier(model: str, rows: int) -> dict:
    from thresher.classifier.scorer import ClassifierScorer, positive_probability
    from thresher.classifier.text import prediction_lines

    scorer = ClassifierScorer(model=model)
    pages = c4_pages()
    texts = (pages * -(-rows // len(pages)))[:rows]
    batches = [batch_of(texts[s : s + 1024]) for s in range(0, rows, 1024)]  # the score stage's batch size
    scorer.score(batches[0])
    out = {"scorer (normalise + one predict per 1,024-row batch)": rate(lambda: [scorer.score(b) for b in batches],
                                                                        rows)}
    column = pa.chunked_array([b.column(1) for b in batches])
    lines = prediction_lines(column, lowercase=True, max_chars=scorer.max_chars)
    out["normalise, pyarrow.compute"] = rate(lambda: prediction_lines(column, lowercase=True, max_chars=10_000), rows)
    import re

    out["normalise, Python re (lower + \\s+ collapse)"] = rate(
        lambda: [re.sub(r"\s+", " ", t.lower())[:10_000] + "\n" for t in texts], rows)
    out["predict only, one call"] = rate(lambda: positive_probability(scorer.loaded(), lines), rows)
    loop_rows = min(rows, 2000)
    model_ = scorer.loaded()
    out["predict only, one call per row"] = rate(
        lambda: [positive_probability(model_, [line]) for line in lines[:loop_rows]], loop_rows)
    return out


def bench_head(docs: int) -> float:
    from thresher.embeddings.distill import DistilledScorer, _embed_params, fit_ridge, save_head
    from thresher.embeddings.scorer import EmbeddingScorer

    pages, fit_pages = c4_pages()[:docs], c4_pages()[:64]
    embedder = EmbeddingScorer(backend="onnx", threads=1, device="cpu")
    vectors = embedder.embed(fit_pages).vectors
    y = np.array([len(p.split()) for p in fit_pages], dtype=np.float64)
    fit, _, _ = fit_ridge(vectors, y, [1.0], np.arange(64) % 4, 4)
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"name": "bench", "target": "words", "target_range": [float(y.min()), float(y.max())],
                "embedding": {"scorer": "embed@1", "params": _embed_params(embedder),
                              "model_fingerprint": embedder.model_fingerprint,
                              "vector_column": embedder.vector_column, "dimension": embedder.dimension}}
        directory, _ = save_head(Path(tmp) / "distilled_bench", fit, meta)
        head = DistilledScorer(head=str(directory))
        batch = batch_of(pages)
        head.score(batch.slice(0, 4))
        return rate(lambda: head.score(batch), len(pages), repeats=1)


def bench_judge(docs: int) -> float:
    import torch

    torch.set_num_threads(1)
    from thresher.judges.runner import build_judge_scorer

    with tempfile.TemporaryDirectory() as tmp:
        judge = build_judge_scorer("judge_edu", {"cache_dir": tmp})
        batch = batch_of(c4_pages()[: docs + 1])
        judge.score(batch.slice(docs, 1))  # loads the model
        return rate(lambda: judge.score(batch.slice(0, docs)), docs, repeats=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--head-docs", type=int, default=200)
    parser.add_argument("--judge-docs", type=int, default=4)
    parser.add_argument("--no-judge", action="store_true")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        classifier = bench_classifier(classifier_model(Path(tmp)), args.rows)
    head = bench_head(args.head_docs)
    judge = None if args.no_judge else bench_judge(args.judge_docs)
    fast = classifier["scorer (normalise + one predict per 1,024-row batch)"]
    print(f"C4 pages (mean {np.mean([len(p) for p in c4_pages()]):,.0f} characters), {cores} core(s) allowed, "
          "one thread each; best of 3 (classifier), one pass (head, judge)\n")
    print("| scorer | docs/s | classifier is ... x faster |\n|---|---|---|")
    print(f"| fastText classifier (`classifier@1`, {args.rows:,} docs) | {fast:,.0f} | 1 |")
    print(f"| distilled head from text (`distilled@1`, MiniLM int8 ONNX, {args.head_docs} docs) | {head:,.1f} | "
          f"{fast / head:,.0f} |")
    if judge is not None:
        print(f"| judge_edu (packaged 0.5B, expected mode, {args.judge_docs} docs) | {judge:,.2f} | "
              f"{fast / judge:,.0f} |")
    print("\nclassifier parts (docs/s):\n")
    for part, value in classifier.items():
        print(f"- {part}: {value:,.0f}")


if __name__ == "__main__":
    main()
