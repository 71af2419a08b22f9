"""Embedding throughput and quality on CPU: all-MiniLM-L6-v2 as the packaged int8 ONNX build
(onnxruntime + tokenizers, thresher's `OnnxEncoder`), as sentence-transformers fp32 (torch), and its
static distillation `all-minilm-l6-v2-static` (model2vec, thresher's `StaticEncoder`), same texts,
same threads, each in its own subprocess (which also gives its peak RSS and its model load time).

For docs/s per core, pin the run to one core and give each encoder one thread:

    taskset -c 0 python bench/embed_throughput.py --threads 1 [--repeat 2] [--models onnx,static]

Corpora (real text from ../shared/data):
- "c4": the 200 C4 sample documents (most are cut at MiniLM's 256 tokens; static: 512);
- "alpaca": the first 1,000 records of alpaca_5000.json rendered as thresher renders instructions
  (instruction, input, output), shorter texts (~90 tokens at the median);
- "planted": tests/embeddings' planted-paraphrase corpus built from the same files: the 97 Alpaca
  instructions that both alpaca_5000.json (davinci-003 answers) and alpaca_sample.json (GPT-4
  answers) hold, answered twice, among 300 other records of each (792 texts).
Each is embedded `--repeat` times, and again until `--min-seconds` have passed (repetition adds
volume, not variety: the same texts again).

Quality, from the vectors (thresholds chosen per model, since their similarity scales differ):
- paraphrase recall on "planted" at matched thresholds: for each model the threshold that lets
  1 in 10,000 (and 1 in 1,000) of the unrelated pairs through, and the share of planted pairs at or
  above it; top-1: the share of planted pairs where one is the other's nearest neighbour. A word
  TF-IDF cosine is printed as the lexical reference (the pairs share their instruction's words);
- DEITA diversity selection on "planted" (rows in a seeded random order, keep a row when its
  similarity to every kept row is <= threshold, k rows): MiniLM at `--deita-threshold`, the static
  model at the threshold that passes the same share of all pairs; overlap of the two selections,
  planted pairs kept whole (both members: a duplicate let through), and each selection's mean
  pairwise similarity measured with MiniLM (lower: more diverse) against a random sample's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import SHARED_DATA, c4_sample  # noqa: E402

STATIC = "all-minilm-l6-v2-static"
MODELS = {  # worker name -> (EmbeddingScorer arguments, label)
    "onnx": ({"backend": "onnx"}, "MiniLM int8 ONNX"),
    "sentence_transformers": ({"backend": "sentence_transformers"}, "MiniLM fp32 ST"),
    "static": ({"model": STATIC, "backend": "static"}, "static (model2vec)"),
}


def render(record: dict) -> str:
    return (f"{record['instruction']}\n\n{record['input']}\n\n{record['output']}" if record.get("input") else
            f"{record['instruction']}\n\n{record['output']}")


def alpaca_texts(n: int = 1000) -> list[str]:
    records = json.loads((SHARED_DATA / "alpaca_5000.json").read_text(encoding="utf-8"))[:n]
    return [render(r) for r in records]


def planted_corpus(background: int = 300, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """tests/embeddings/corpus.py's corpus (same files, same seeded background), and the (i, j)
    rows of each planted pair: the same instruction and input, answered by davinci-003 and GPT-4."""
    def key(r: dict) -> tuple[str, str]:
        return r["instruction"].strip(), r.get("input", "").strip()

    davinci = json.loads((SHARED_DATA / "alpaca_5000.json").read_text(encoding="utf-8"))
    gpt4 = json.loads((SHARED_DATA / "alpaca_sample.json").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    chosen = []
    for records, other in ((davinci, {key(r) for r in gpt4}), (gpt4, {key(r) for r in davinci})):
        shared = [r for r in records if key(r) in other]
        chosen.append(shared + rng.sample([r for r in records if key(r) not in other], background))
    texts = [render(r) for r in chosen[0] + chosen[1]]
    offset = len(chosen[0])
    pairs = [(i, offset + j) for i, a in enumerate(chosen[0]) for j, b in enumerate(chosen[1])
             if (a["instruction"], a.get("input", "")) == (b["instruction"], b.get("input", ""))]
    return texts, np.array(pairs)


def worker(model: str, threads: int, repeat: int, min_seconds: float, batch_size: int, out: Path) -> None:
    if model == "sentence_transformers":
        import torch

        torch.set_num_threads(threads)
    from thresher.embeddings.scorer import EmbeddingScorer

    started = time.perf_counter()
    scorer = EmbeddingScorer(**MODELS[model][0], threads=threads, batch_size=batch_size, device="cpu")
    scorer.embed(["warm up the model"])
    load = time.perf_counter() - started
    result = {"model": model, "load_seconds": round(load, 2), "corpora": {},
              "torch_imported": "torch" in sys.modules}
    vectors = {}
    planted, _ = planted_corpus()
    for name, texts in (("c4", c4_sample()), ("alpaca", alpaca_texts()), ("planted", planted)):
        t0, runs = time.perf_counter(), 0
        while runs < repeat or time.perf_counter() - t0 < min_seconds:
            encoded = scorer.embed(texts)
            runs += 1
        seconds = time.perf_counter() - t0
        vectors[name] = encoded.vectors
        result["corpora"][name] = {"docs": len(texts) * runs, "seconds": round(seconds, 3),
                                   "docs_per_second": round(len(texts) * runs / seconds, 1),
                                   "median_tokens": int(np.median(encoded.tokens))}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    np.savez(out.with_suffix(".npz"), **vectors)
    out.write_text(json.dumps(result))


# -- quality -----------------------------------------------------------------------------------------


def _unrelated(sims: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    n = len(sims)
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    mask[pairs[:, 0], pairs[:, 1]] = mask[pairs[:, 1], pairs[:, 0]] = False
    return sims[mask]


def paraphrase_recall(vectors: np.ndarray, pairs: np.ndarray) -> dict:
    sims = vectors @ vectors.T
    planted = sims[pairs[:, 0], pairs[:, 1]]
    unrelated = _unrelated(sims, pairs)
    np.fill_diagonal(sims, -np.inf)
    top1 = np.mean([sims[a].argmax() == b or sims[b].argmax() == a for a, b in pairs])
    result = {"top1": float(top1), "unrelated_median": float(np.median(unrelated))}
    for rate in (1e-4, 1e-3):
        threshold = float(np.quantile(unrelated, 1 - rate))
        result[rate] = (threshold, float(np.mean(planted >= threshold)))
    return result


def deita(vectors: np.ndarray, order: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, int]:
    """DEITA's rule over rows in `order` (thresher.embeddings.diversity.greedy_batch, one batch):
    the rows kept, and how many rows were skipped as too similar before the k-th was kept."""
    from thresher.embeddings.diversity import greedy_batch

    keep, _ = greedy_batch(vectors[order], np.full(len(order), -np.inf, dtype=np.float32), threshold)
    kept = np.flatnonzero(keep)[:k]
    examined = int(kept[-1]) + 1 if len(kept) else 0
    return order[kept], examined - len(kept)


def matched_threshold(reference: np.ndarray, other: np.ndarray, threshold: float) -> float:
    """The threshold of `other` that passes the same share of all pairs as `threshold` does for `reference`."""
    upper = np.triu_indices(len(reference), 1)
    share = float(np.mean((reference @ reference.T)[upper] > threshold))
    return float(np.quantile((other @ other.T)[upper], 1 - share))


def quality(results: dict, pairs: np.ndarray, texts: list[str], deita_threshold: float, k: int, seed: int) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from thresher.embeddings.diversity import mean_pairwise_similarity

    tfidf = TfidfVectorizer(sublinear_tf=True).fit_transform(texts).toarray().astype(np.float32)
    rows = {MODELS[m][1]: r["vectors"]["planted"] for m, r in results.items()}
    rows["word TF-IDF (lexical ref.)"] = tfidf
    print(f"\nparaphrase recall, {len(pairs)} planted pairs among {len(texts)} texts "
          f"({len(texts) * (len(texts) - 1) // 2 - len(pairs):,} unrelated pairs):")
    print(f"{'model':<28} {'top-1':>6} {'unrelated median':>17} {'t @1e-4':>8} {'recall':>7} {'t @1e-3':>8} "
          f"{'recall':>7}")
    for label, vectors in rows.items():
        r = paraphrase_recall(vectors, pairs)
        print(f"{label:<28} {r['top1']:>6.3f} {r['unrelated_median']:>17.3f} {r[1e-4][0]:>8.3f} {r[1e-4][1]:>7.3f} "
              f"{r[1e-3][0]:>8.3f} {r[1e-3][1]:>7.3f}")
    if "onnx" not in results or "static" not in results:
        return
    minilm, static = results["onnx"]["vectors"]["planted"], results["static"]["vectors"]["planted"]
    order = np.random.default_rng(seed).permutation(len(texts))
    static_threshold = matched_threshold(minilm, static, deita_threshold)
    (a, skipped_a), (b, skipped_b) = deita(minilm, order, deita_threshold, k), deita(static, order, static_threshold, k)
    random_rows = order[:k]

    def whole(selected: np.ndarray) -> int:
        chosen = set(selected.tolist())
        return sum(int(i in chosen and j in chosen) for i, j in pairs)

    print(f"\nDEITA selection of k={k} of {len(texts)} (seeded random rank order; MiniLM threshold {deita_threshold}, "
          f"static {static_threshold:.3f}, matched on the share of all pairs above it):")
    print(f"  rows skipped as similar: MiniLM {skipped_a}, static {skipped_b}; "
          f"overlap {len(set(a.tolist()) & set(b.tolist())) / k:.3f} of k; planted pairs kept whole: MiniLM "
          f"{whole(a)}, static {whole(b)}, random {whole(random_rows)}")
    print("  mean pairwise similarity (MiniLM's vectors; lower = more diverse): MiniLM's selection "
          f"{mean_pairwise_similarity(minilm[a])[0]:.4f}, static's {mean_pairwise_similarity(minilm[b])[0]:.4f}, "
          f"random {mean_pairwise_similarity(minilm[random_rows])[0]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each corpus at least this long")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", default="onnx,sentence_transformers,static")
    parser.add_argument("--deita-threshold", type=float, default=0.5)
    parser.add_argument("--deita-k", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.repeat, args.min_seconds, args.batch_size, Path(args.out))
        return

    import tempfile

    models = [m for m in args.models.split(",") if m]
    if unknown := set(models) - set(MODELS):
        sys.exit(f"unknown --models {sorted(unknown)}; known: {', '.join(MODELS)}")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"CPU, {args.threads} thread(s), batch {args.batch_size}, cores {cores}; load average "
          f"{os.getloadavg()[0]:.2f}; corpora: 200 real C4 documents, 1,000 real Alpaca records, the 792-text "
          f"planted corpus, each embedded >= {args.repeat}x and >= {args.min_seconds} s "
          "(repetition: volume, not variety)")
    if "static" in models:
        from thresher.embeddings.models import located

        t0 = time.perf_counter()
        located(STATIC, None)  # distilled once into the model cache (not counted as the worker's load)
        print(f"static model ready in {time.perf_counter() - t0:.1f} s (distilled now if it was not in the cache)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            out = Path(tmp) / f"{model}.json"
            subprocess.run([sys.executable, __file__, "--worker", model, "--threads", str(args.threads),
                            "--repeat", str(args.repeat), "--min-seconds", str(args.min_seconds),
                            "--batch-size", str(args.batch_size), "--out", str(out)], check=True)
            results[model] = json.loads(out.read_text())
            with np.load(out.with_suffix(".npz")) as arrays:
                results[model]["vectors"] = {k: arrays[k] for k in arrays.files}
    base = "onnx" if "onnx" in results else models[0]
    print(f"\n{'corpus':<8} {'model':<20} {'median tok':>10} {'docs/s':>10} {'vs ' + base:>10}")
    for name in ("c4", "alpaca", "planted"):
        for model, r in results.items():
            c = r["corpora"][name]
            ratio = c["docs_per_second"] / results[base]["corpora"][name]["docs_per_second"]
            print(f"{name:<8} {MODELS[model][1]:<20} {c['median_tokens']:>10} {c['docs_per_second']:>10.1f} "
                  f"{ratio:>9.2f}x")
    if "onnx" in results and "sentence_transformers" in results:
        for name in ("c4", "alpaca"):
            cosine = (results["onnx"]["vectors"][name] * results["sentence_transformers"]["vectors"][name]).sum(axis=1)
            print(f"ONNX int8 vs ST fp32 cosine on {name}: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    print("\nload (first vector) and peak RSS: " + "; ".join(
        f"{MODELS[m][1]} {r['load_seconds']} s, {r['peak_rss_mb']} MB" + (" (imports torch)" if r["torch_imported"]
                                                                          else "")
        for m, r in results.items()))
    texts, pairs = planted_corpus()
    quality(results, pairs, texts, args.deita_threshold, args.deita_k, args.seed)


if __name__ == "__main__":
    main()
