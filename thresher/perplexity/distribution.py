"""The distribution of a perplexity column over a run: percentiles and a log-scale histogram, as
the perplexity stage reports them (CCNet bands: head < P30 <= middle < P60 <= tail).

Computed in bounded memory, whatever the size of the run: the score table's parts are streamed in
batches, a few times over, and no pass keeps more than a batch plus fixed-size counters.

    pass 1       count, nulls, min, max
    pass 2       the log-spaced histogram (edges from min and max), and the first 16 bits of
                 every value the percentiles need (see below)
    pass 3..5    the next 16 bits, until the few candidates left fit in a small buffer

The percentiles are exact, not sketched: numpy's default ("linear", Hyndman & Fan type 7, which is
also DuckDB's `quantile_cont`) interpolates between the values of rank floor((n-1)q) and the next
one, and those order statistics are found by radix selection. Perplexities here are positive
finite doubles, whose IEEE-754 bit patterns sort as unsigned integers in the order of the values;
each pass counts, for every rank still looked for, the next 16 bits of the values that share the
bits found so far, and keeps the bucket that holds the rank. Four passes settle any 64-bit value,
and a bucket of at most `collect` values is read and sorted instead. The interpolation then repeats
numpy's arithmetic step by step, so the results equal `np.quantile` over all values in memory (the
tests check this bit for bit). A streaming sketch (t-digest, KLL) would need one pass less but
give approximate percentiles; DuckDB's `quantile_cont` keeps every value in its aggregate state,
8 bytes a row outside the memory limit, which is what this module avoids.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from thresher.perplexity.config import PerplexityConfig
from thresher.storage.run_dir import RunDir

BATCH_ROWS = 1 << 16
DIGIT_BITS = 16
COLLECT = 1 << 16  # a bucket this small is read into memory and sorted instead of refined further


def _arrays(parts: list[Path], column: str, batch_rows: int, nulls: list[int] | None = None) -> Iterator[np.ndarray]:
    """The column's positive finite values, a batch at a time (non-positive, infinite and NaN
    values are neither scored nor null, as before); `nulls` (one counter) receives the nulls."""
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows, columns=[column]):
            array = batch.column(0)
            if nulls is not None:
                nulls[0] += array.null_count
            values = array.drop_null().to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            yield values[np.isfinite(values) & (values > 0)]


class _Search:
    """The order statistics of some ranks, found by radix selection: `feed` every batch of one
    pass over the values, then `settle`; repeat while `open`."""

    def __init__(self, ranks: set[int], n: int, collect: int):
        # rank -> (prefix bits found, how many bits, values below the prefix's bucket, values in it)
        self.open: dict[int, tuple[int, int, int, int]] = {r: (0, 0, 0, n) for r in ranks}
        self.found: dict[int, float] = {}
        self.collect = collect
        self._start_pass()

    def _start_pass(self) -> None:
        self.groups: dict[tuple[int, int, int, int], list[int]] = {}
        for rank, state in self.open.items():
            self.groups.setdefault(state, []).append(rank)
        self.counts = {g: np.zeros(1 << DIGIT_BITS, np.int64) for g in self.groups if g[3] > self.collect}
        self.kept: dict[tuple, list[np.ndarray]] = {g: [] for g in self.groups if g[3] <= self.collect}

    def feed(self, values: np.ndarray) -> None:
        bits = values.view(np.uint64)
        for group in self.groups:
            prefix, known = group[0], group[1]
            inside = bits if known == 0 else bits[(bits >> np.uint64(64 - known)) == np.uint64(prefix)]
            if group in self.kept:
                self.kept[group].append(inside)
            else:
                digits = (inside >> np.uint64(64 - known - DIGIT_BITS)) & np.uint64((1 << DIGIT_BITS) - 1)
                self.counts[group] += np.bincount(digits.astype(np.intp), minlength=1 << DIGIT_BITS)

    def settle(self) -> None:
        for group, ranks in self.groups.items():
            prefix, known, below, _ = group
            if group in self.kept:
                ordered = np.sort(np.concatenate(self.kept[group]).view(np.float64))
                for rank in ranks:
                    self.found[rank] = float(ordered[rank - below])
                    del self.open[rank]
                continue
            counts = self.counts[group]
            cumulative = np.cumsum(counts)
            for rank in ranks:
                digit = int(np.searchsorted(cumulative, rank - below, side="right"))
                start = below + (int(cumulative[digit - 1]) if digit else 0)
                state = ((prefix << DIGIT_BITS) | digit, known + DIGIT_BITS, start, int(counts[digit]))
                if state[1] == 64:  # every bit known: the bucket's values all equal this one
                    self.found[rank] = float(np.array([state[0]], np.uint64).view(np.float64)[0])
                    del self.open[rank]
                else:
                    self.open[rank] = state
        self._start_pass()


def _quantile_ranks(n: int, q: float) -> tuple[int, int, float]:
    """numpy's "linear" method: the two ranks to interpolate between, and the weight."""
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return n - 1, n - 1, virtual - math.floor(virtual)
    previous = math.floor(virtual)
    return previous, previous + 1, virtual - previous


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's `_lerp`, the same floating-point operations in the same order."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def perplexity_distribution(run: RunDir, key: str, column: str, config: PerplexityConfig, *,
                            batch_rows: int = BATCH_ROWS, collect: int = COLLECT) -> dict:
    """Count, nulls, percentiles and a log10-spaced histogram of `column` over a score table."""
    parts = sorted((run.root / "scores" / key).glob("part-*.parquet"))
    nulls = [0]
    n, low, high = 0, math.inf, -math.inf
    for values in _arrays(parts, column, batch_rows, nulls):
        if values.size:
            n += int(values.size)
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    result: dict = {"scorer": key, "column": column, "scored": n, "null": nulls[0]}
    if not n:
        return {**result, "quantiles": {}, "histogram": []}

    lo, hi = math.log10(low), math.log10(high)
    edges = np.logspace(lo, hi if hi > lo else lo + 1e-9, config.histogram_bins + 1)
    histogram = np.zeros(config.histogram_bins, np.int64)
    wanted = {q: _quantile_ranks(n, q) for q in config.quantiles}
    search = _Search({r for a, b, _ in wanted.values() for r in (a, b)}, n, collect)
    for values in _arrays(parts, column, batch_rows):  # pass 2: the histogram, the top 16 bits
        histogram += np.histogram(values, bins=edges)[0]
        search.feed(values)
    search.settle()
    while search.open:
        for values in _arrays(parts, column, batch_rows):
            search.feed(values)
        search.settle()

    result["quantiles"] = {f"p{round(q * 100)}": _lerp(search.found[a], search.found[b], t)
                           for q, (a, b, t) in wanted.items()}
    result["min"], result["max"] = low, high
    result["histogram"] = [{"from": float(a), "to": float(b), "documents": int(c)}
                           for a, b, c in zip(edges[:-1], edges[1:], histogram)]
    return result


def histogram_markdown(run_name: str, dist: dict) -> str:
    lines = [f"# Perplexity of `{run_name}`: {dist['scorer']} (`{dist['column']}`)", "",
             f"{dist['scored']:,} documents scored, {dist['null']:,} without a perplexity (null or blank text).", ""]
    if dist["quantiles"]:
        lines += ["| " + " | ".join(dist["quantiles"]) + " |", "|" + "---|" * len(dist["quantiles"]),
                  "| " + " | ".join(f"{v:,.1f}" for v in dist["quantiles"].values()) + " |", "",
                  "CCNet bands on this run: head < P30 ≤ middle < P60 ≤ tail.", "",
                  "| perplexity | documents | |", "|---|---|---|"]
        peak = max(b["documents"] for b in dist["histogram"]) or 1
        for b in dist["histogram"]:
            bar = "█" * round(30 * b["documents"] / peak)
            lines.append(f"| {b['from']:,.1f} – {b['to']:,.1f} | {b['documents']:,} | {bar} |")
    return "\n".join(lines) + "\n"
