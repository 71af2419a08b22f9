"""The distribution of a perplexity column over a run: percentiles and a log-scale histogram, as
the perplexity stage reports them (CCNet bands: head < P30 <= middle < P60 <= tail)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq

from thresher.perplexity.config import PerplexityConfig
from thresher.storage.run_dir import RunDir


def perplexity_distribution(run: RunDir, key: str, column: str, config: PerplexityConfig) -> dict:
    """Count, nulls, percentiles and a log10-spaced histogram of `column` over a score table."""
    values = []
    nulls = 0
    for part in sorted((run.root / "scores" / key).glob("part-*.parquet")):
        array = pq.read_table(part, columns=[column]).column(column)
        nulls += array.null_count
        values.append(array.drop_null().to_numpy())
    data = np.concatenate(values) if values else np.zeros(0)
    data = data[np.isfinite(data) & (data > 0)]
    result: dict = {"scorer": key, "column": column, "scored": int(data.size), "null": int(nulls)}
    if not data.size:
        return {**result, "quantiles": {}, "histogram": []}
    result["quantiles"] = {f"p{round(q * 100)}": float(np.quantile(data, q)) for q in config.quantiles}
    result["min"], result["max"] = float(data.min()), float(data.max())
    lo, hi = math.log10(data.min()), math.log10(data.max())
    edges = np.logspace(lo, hi if hi > lo else lo + 1e-9, config.histogram_bins + 1)
    counts, edges = np.histogram(data, bins=edges)
    result["histogram"] = [{"from": float(a), "to": float(b), "documents": int(n)}
                           for a, b, n in zip(edges[:-1], edges[1:], counts)]
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
