"""MinHash signature throughput on one core: thresher vs datasketch vs rensa, end to end.

Corpus: the real C4 sample of ../shared/data (200 documents), repeated to --docs documents with two
words of every copy swapped (so no two copies are byte-identical). Repetition inflates volume,
not variety.

Every engine goes from Python strings to 112-permutation signatures of word 5-gram sets:

  thresher          Arrow array -> vectorised numpy pipeline (NFKC/lowercase/punctuation/digit
                    normalisation, tokens, 5-gram hashes, 112 affine permutations), 1024 docs a batch
  datasketch        MinHash.generator (permutations reused, scheme affine32) over sha1 of each shingle
  rensa             RMinHash.digest_matrix_from_token_sets (Rust), its bulk API
  "+ spec shingles" the baseline fed thresher's normalisation spec in Python (same tokens as thresher)
  "+ split shingles" the baseline fed the cheapest Python shingling: text.lower().split() 5-grams

The process is pinned to one CPU and every thread pool is set to one thread. Each engine runs
--repeats times, interleaved; the best run counts and the range is printed (the machine is shared).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import c4_sample  # noqa: E402

from thresher.dedup.minhash import MinHasher  # noqa: E402
from thresher.dedup.normalize import reference_tokens  # noqa: E402

NUM_PERM, NGRAM, SEED, BATCH = 112, 5, 1, 1024


def corpus(n_docs: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = c4_sample()
    out = []
    for i in range(n_docs):
        words = texts[i % len(texts)].split(" ")
        a, b = rng.randrange(len(words)), rng.randrange(len(words))
        words[a], words[b] = words[b], words[a]
        out.append(" ".join(words))
    return out


def split_shingles(text: str) -> list[str]:
    words = text.lower().split()
    if len(words) < NGRAM:
        return [" ".join(words)] if words else []
    return list({" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)})


def spec_shingles(text: str) -> list[str]:
    words = reference_tokens(text)
    if len(words) < NGRAM:
        return [" ".join(words)] if words else []
    return list({" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)})


def run_thresher(texts: list[str]) -> np.ndarray:
    hasher = MinHasher(NGRAM, NUM_PERM, SEED)
    out = []
    for start in range(0, len(texts), BATCH):
        out.append(hasher(pa.array(texts[start : start + BATCH], type=pa.large_string())))
    return np.vstack(out)


def run_datasketch(texts: list[str], shingler) -> int:
    from datasketch import MinHash

    count = 0
    sets = ([s.encode() for s in shingler(t)] for t in texts)
    for sketch in MinHash.generator(sets, num_perm=NUM_PERM, seed=SEED, scheme="affine32"):
        count += sketch.hashvalues[0] >= 0
    return count


def run_rensa(texts: list[str], shingler) -> int:
    from rensa import RMinHash

    matrix = RMinHash.digest_matrix_from_token_sets((shingler(t) for t in texts), NUM_PERM, SEED)
    return matrix.len()


def run_rensa_on_thresher_shingles(texts: list[str]) -> int:
    """rensa's Rust kernel fed thresher's vectorised 64-bit shingle hashes: kernel vs kernel."""
    from rensa import RMinHash

    hasher = MinHasher(NGRAM, NUM_PERM, SEED)
    rows = 0
    for start in range(0, len(texts), BATCH):
        shingles = hasher.shingles(pa.array(texts[start : start + BATCH], type=pa.large_string()))
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(shingles.values, shingles.offsets.astype(np.uint64),
                                                               NUM_PERM, SEED)
        rows += matrix.len()
    return rows


def run_signature_stage(texts: list[str], workdir: Path) -> float:
    """thresher's whole per-shard step: Parquet in -> exact hash, doc_key, signature, band keys out."""
    from thresher.dedup.config import DedupConfig
    from thresher.dedup.stage import signature_shard
    from thresher.schema import DOCUMENT_SCHEMA, make_doc_id
    from thresher.storage.parquet_io import write_table_atomic
    from thresher.storage.run_dir import RunDir

    run = RunDir(workdir / "run")
    run.init()
    n = len(texts)
    table = pa.table({
        "doc_id": [make_doc_id("bench", i) for i in range(n)], "text": pa.array(texts, pa.large_string()),
        "source": ["bench"] * n, "source_row": list(range(n)), "url": [None] * n,
        "timestamp": pa.array([None] * n, pa.timestamp("us", tz="UTC")), "meta_json": [None] * n,
    }, schema=DOCUMENT_SCHEMA)
    write_table_atomic(run.table_part("documents", "bench"), table.to_batches(4096), DOCUMENT_SCHEMA,
                       cache_key="bench-input")
    started = time.perf_counter()
    signature_shard(run, DedupConfig(), "documents", "bench")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed)")
    args = parser.parse_args()

    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {cpu})
    texts = corpus(args.docs)
    mean_kb = sum(len(t.encode()) for t in texts) / len(texts) / 1024
    print(f"MinHash signatures, one core (pinned to CPU {cpu}; thread pools = 1), {NUM_PERM} permutations, "
          f"word {NGRAM}-grams")
    print(f"corpus: the 200-document real C4 sample repeated with two words swapped per copy -> "
          f"{len(texts):,} docs, {mean_kb:.1f} KiB/doc; best of {args.repeats} interleaved runs")

    engines = {
        "thresher (vectorised numpy)": lambda: run_thresher(texts),
        "datasketch 2.0 + split shingles": lambda: run_datasketch(texts, split_shingles),
        "datasketch 2.0 + spec shingles": lambda: run_datasketch(texts, spec_shingles),
        "rensa 0.5 + split shingles": lambda: run_rensa(texts, split_shingles),
        "rensa 0.5 + spec shingles": lambda: run_rensa(texts, spec_shingles),
        "rensa 0.5 kernel on thresher's shingle hashes": lambda: run_rensa_on_thresher_shingles(texts),
    }
    run_thresher(texts[:2000])  # warm-up: imports, permutation tables, caches
    run_datasketch(texts[:200], split_shingles)
    run_rensa(texts[:200], split_shingles)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.repeats):
        for name, fn in engines.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)

    rate = {name: len(texts) / min(ts) for name, ts in times.items()}
    ours = rate["thresher (vectorised numpy)"]
    print(f"\n{'engine':<48} {'docs/s (best)':>14} {'range':>19} {'thresher is':>12}")
    for name, ts in times.items():
        lo, hi = len(texts) / max(ts), len(texts) / min(ts)
        ratio = "" if name.startswith("thresher") else f"{ours / rate[name]:.2f}x"
        print(f"{name:<48} {rate[name]:>14,.0f} {f'{lo:,.0f}-{hi:,.0f}':>19} {ratio:>12}")

    with tempfile.TemporaryDirectory() as tmp:
        stage = min(run_signature_stage(texts, Path(tmp) / str(i)) for i in range(2))
    print(f"\nthresher signature stage on a {len(texts):,}-doc Parquet shard (read, exact hash, doc key, signature, "
          f"14 band keys, write): {len(texts) / stage:,.0f} docs/s")
    best_peer = max(v for k, v in rate.items() if not k.startswith("thresher") and "kernel" not in k)
    print(f"thresher vs the fastest end-to-end peer above: {ours / best_peer:.2f}x; "
          f"vs datasketch (split shingles): {ours / rate['datasketch 2.0 + split shingles']:.2f}x "
          f"(goal >= 3x); vs rensa (split shingles): {ours / rate['rensa 0.5 + split shingles']:.2f}x (goal >= 1x)")


if __name__ == "__main__":
    main()
