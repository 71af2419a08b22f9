"""Scale of the dedup cluster step: 1M .. 10M documents through thresher's out-of-core clustering.

The inputs are synthetic index files (what the signature step writes: doc_id, doc_key, exact_hash
and 14 band keys per document), because hashing 10M real documents would measure the signature
step, not the cluster step. Planted structure, spread over all shards:

  - 1 % of the documents are one cluster of identical documents (every band key and the exact
    hash equal): the case that makes an all-pairs self-join quadratic;
  - 4 % are groups of 4: half stars (members share some bands with the first member; every tenth
    group has an exact copy), half chains (member k shares one band with member k-1 only);
  - the rest have random keys (singletons).

Each size runs `cluster_index` in a child process under a DuckDB memory limit; the parent samples
the child's RSS every 0.1 s and the child reports its own peak (ru_maxrss). The result is checked
against the planted clusters.

    .venv/bin/python bench/dedup_cluster_scale.py                 # 1M and 10M
    .venv/bin/python bench/dedup_cluster_scale.py --sizes 1000000 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thresher.dedup.hashing import U64, fmix64, string_key64  # noqa: E402

BANDS = 14
GROUP = 4
BIG_FRACTION, GROUP_FRACTION = 0.01, 0.04


def _keys(seed: int, idx: np.ndarray, band: int) -> np.ndarray:
    return fmix64((idx.astype(U64) * U64(BANDS) + U64(band)) ^ U64(seed)).view(np.int64)


def planted(n: int) -> tuple[int, int]:
    big = int(n * BIG_FRACTION)
    groups = int(n * GROUP_FRACTION) // GROUP
    return big, groups


def shard_tables(n: int, idx: np.ndarray) -> tuple[pa.Table, pa.Table]:
    big, groups = planted(n)
    keys = np.stack([_keys(1, idx, b) for b in range(BANDS)], axis=1)
    exact = idx.astype(np.int64)  # unique by default
    in_big = idx < big
    keys[in_big] = np.stack([_keys(2, np.zeros(1, np.int64), b) for b in range(BANDS)], axis=1)
    exact[in_big] = -1
    j = idx - big
    in_group = (j >= 0) & (j < groups * GROUP)
    gid, pos = j // GROUP, j % GROUP
    star = in_group & (gid % 2 == 0) & (pos > 0)
    for b in range(BANDS):
        shared = star & ((b + pos) % 3 == 0)
        anchor = big + gid[shared] * GROUP
        keys[shared, b] = _keys(1, anchor, b)
    copy = star & (gid % 10 == 0) & (pos == 1)
    anchor = big + gid[copy] * GROUP
    keys[copy] = np.stack([_keys(1, anchor, b) for b in range(BANDS)], axis=1)
    exact[copy] = anchor
    chain = in_group & (gid % 2 == 1) & (pos > 0)
    for b in range(BANDS):
        linked = chain & ((gid + pos) % BANDS == b)
        keys[linked, b] = _keys(1, idx[linked] - 1, b)

    doc_ids = [f"{i:032x}" for i in idx.tolist()]
    doc_keys = pa.array([string_key64(d) for d in doc_ids], pa.int64())
    sigs = pa.table({"doc_id": pa.array(doc_ids, pa.string()), "doc_key": doc_keys,
                     "exact_hash": pa.array([f"{e & 0xFFFFFFFFFFFFFFFF:032x}" for e in exact.tolist()], pa.string())})
    bands = pa.table({"doc_key": doc_keys, **{f"band_{b:02d}": pa.array(keys[:, b]) for b in range(BANDS)}})
    return sigs, bands


def generate(n: int, directory: Path, shard_docs: int) -> list[tuple[Path, Path]]:
    marker = directory / "complete.json"
    shards = max(1, -(-n // shard_docs))
    files = [(directory / "signatures" / f"part-{s:04d}.parquet", directory / "band_keys" / f"part-{s:04d}.parquet")
             for s in range(shards)]
    if marker.is_file() and json.loads(marker.read_text()) == {"n": n, "shards": shards}:
        return files
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "signatures").mkdir(parents=True)
    (directory / "band_keys").mkdir(parents=True)
    for s, (sig_path, band_path) in enumerate(files):
        idx = np.arange(s, n, shards, dtype=np.int64)  # every shard holds part of every cluster
        sigs, bands = shard_tables(n, idx)
        pq.write_table(sigs, sig_path, row_group_size=65536)
        pq.write_table(bands, band_path, row_group_size=65536)
    marker.write_text(json.dumps({"n": n, "shards": shards}))
    return files


def child(directory: Path, memory_limit: str, threads: int) -> None:
    from thresher.dedup.config import DedupConfig
    from thresher.dedup.index import IndexPart
    from thresher.dedup.stage import ClusterOutputs, cluster_index

    sig_files = sorted((directory / "signatures").glob("part-*.parquet"))
    parts = [IndexPart(0, directory, "documents", f.stem, Path("/nonexistent"), f,
                       directory / "band_keys" / f.name) for f in sig_files]
    out = directory / "out"
    outputs = ClusterOutputs(out / "edges.parquet", out / "exact_clusters.parquet", out / "clusters.parquet")
    config = DedupConfig(memory_limit=memory_limit, threads=threads)
    stats = cluster_index(parts, config, outputs, cache_key="bench", work=directory / "work")
    stats["peak_rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(stats))


def run_child(directory: Path, memory_limit: str, threads: int) -> tuple[dict, float, float]:
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(directory), "--memory-limit", memory_limit,
                             "--threads", str(threads)], stdout=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"cluster child failed ({proc.returncode}):\n{out}")
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return result, time.perf_counter() - started, peak / 2**20


def check(n: int, directory: Path, stats: dict) -> str:
    big, groups = planted(n)
    clusters = pq.read_table(directory / "out" / "clusters.parquet", columns=["cluster_id", "cluster_size"])
    sizes = clusters.group_by("cluster_id").aggregate([("cluster_size", "max"), ("cluster_id", "count")])
    expected_sizes = sorted([big] + [GROUP] * groups)
    got = sorted(sizes.column("cluster_size_max").to_pylist())
    ok = got == expected_sizes and stats["minhash"]["duplicates"] == big - 1 + groups * (GROUP - 1)
    exact_expected = (big - 1) + len([g for g in range(0, groups, 2) if g % 10 == 0])
    ok = ok and stats["exact"]["duplicates"] == exact_expected
    return "ok" if ok else f"MISMATCH: got {len(got)} clusters, expected {len(expected_sizes)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shard-docs", type=int, default=500_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to keep the generated inputs")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.memory_limit, args.threads)
        return

    base = args.dir or Path(tempfile.gettempdir()) / "thresher-bench-dedup-cluster"
    print(f"thresher dedup cluster step: synthetic band keys (14 bands), planted clusters: one cluster of "
          f"{BIG_FRACTION:.0%} identical documents, {GROUP_FRACTION:.0%} in groups of {GROUP} (stars, chains); "
          f"DuckDB memory_limit={args.memory_limit}, threads={args.threads}, cpus={os.cpu_count()}")
    rows = []
    for n in args.sizes:
        directory = base / f"n{n}"
        t0 = time.perf_counter()
        generate(n, directory, args.shard_docs)
        gen = time.perf_counter() - t0
        stats, wall, sampled_peak = run_child(directory, args.memory_limit, args.threads)
        verdict = check(n, directory, stats)
        rows.append((n, stats, wall, sampled_peak, verdict))
        print(f"\n{n:>11,} docs  (inputs {gen:.0f} s to generate or reuse)  -> {verdict}")
        print(f"  cluster step {stats['seconds']:.1f} s (process wall {wall:.1f} s): "
              f"exact {stats['exact']['seconds']} s, "
              f"candidates {stats['candidates']['seconds']} s ({stats['candidates']['edges']:,} edges), "
              f"components {stats['components']['seconds']} s ({stats['components']['rounds']} hook rounds, "
              f"{stats['components']['shortcut_steps']} shortcut steps), survivors "
              f"{stats['minhash']['survivor_seconds']} s, writes {stats['write_seconds']} s")
        print(f"  peak RSS {stats['peak_rss_self_mib']:.0f} MiB (ru_maxrss), {sampled_peak:.0f} MiB (sampled); "
              f"largest cluster {stats['minhash']['largest_cluster']:,}, duplicates {stats['minhash']['duplicates']:,}")
    if len(rows) > 1:
        (n0, s0, *_), (n1, s1, *_) = rows[0], rows[-1]
        print(f"\nscaling {n0:,} -> {n1:,} docs ({n1 / n0:.1f}x): cluster time x{s1['seconds'] / s0['seconds']:.2f}, "
              f"time per million docs {s0['seconds'] / n0 * 1e6:.1f} s -> {s1['seconds'] / n1 * 1e6:.1f} s")


if __name__ == "__main__":
    main()
