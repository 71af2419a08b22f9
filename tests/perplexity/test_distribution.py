"""The perplexity distribution in bounded memory equals, bit for bit, numpy over every value in
memory (the method the stage used before, kept here as the oracle)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.config_base import ScorerSpec
from thresher.perplexity import distribution
from thresher.perplexity.config import PerplexityConfig
from thresher.perplexity.distribution import perplexity_distribution
from thresher.storage.run_dir import RunDir

KEY, COLUMN = "kenlm@1", "kenlm_perplexity"
CONFIG = PerplexityConfig(scorers=[ScorerSpec(name="kenlm")], quantiles=(0.0, 0.1, 0.3, 1 / 3, 0.5, 0.6, 0.9, 1.0))


def in_memory(run: RunDir, key: str, column: str, config: PerplexityConfig) -> dict:
    """The former implementation: every value of the run in one numpy array."""
    values, nulls = [], 0
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


def write_run(root, parts: list[list[float | None]]) -> RunDir:
    run = RunDir(root)
    directory = run.root / "scores" / KEY
    directory.mkdir(parents=True)
    for i, values in enumerate(parts):
        table = pa.table({"doc_id": [f"{i}-{j}" for j in range(len(values))],
                          COLUMN: pa.array(values, pa.float64())})
        pq.write_table(table, directory / f"part-{i:03d}.parquet", row_group_size=700)
    return run


def _split(values: np.ndarray, parts: int) -> list[list[float | None]]:
    return [[None if np.isnan(v) and k % 2 else float(v) for k, v in enumerate(chunk)]
            for chunk in np.array_split(values, parts)]


def _cases() -> dict[str, list[list[float | None]]]:
    rng = np.random.default_rng(7)
    lognormal = rng.lognormal(6.0, 1.2, 6000)
    lognormal[rng.choice(6000, 300, replace=False)] = np.nan  # half become nulls, half NaN
    lognormal[:5] = [0.0, -3.0, np.inf, -np.inf, 5e-324]  # not scored, not scored, ..., a subnormal
    ties = rng.choice([12.5, 80.0, 80.0000001, 333.0, 1e4, 7.0, 7.0], 5000)
    wide = 10 ** rng.uniform(-300, 300, 4000)
    return {
        "lognormal with nulls and junk": _split(lognormal, 3),
        "heavy ties": _split(ties, 4),
        "twelve orders of magnitude": _split(wide, 2),
        "one value": [[42.0] * 500, [42.0] * 300],
        "a single document": [[None, 17.25]],
        "only nulls and junk": [[None, None, 0.0, -1.0, float("nan")]],
        "no parts": [],
    }


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize(("batch_rows", "collect"), [(333, 64), (1 << 16, 1 << 16)])
def test_equals_numpy_over_every_value(tmp_path, case, batch_rows, collect):
    run = write_run(tmp_path / "run", _cases()[case])
    expected = in_memory(run, KEY, COLUMN, CONFIG)
    got = perplexity_distribution(run, KEY, COLUMN, CONFIG, batch_rows=batch_rows, collect=collect)
    assert got == expected  # exact: same floats, same counts


def test_passes_are_few_and_batches_bounded(tmp_path, monkeypatch):
    """Small buffers force every level of the radix search; no batch is larger than asked for, and
    the number of passes over the table stays at most six (stats, histogram, four 16-bit digits)."""
    rng = np.random.default_rng(3)
    values = rng.lognormal(5.0, 2.0, 20_000)
    values[:4000] = 123.456  # a bucket of equal values larger than `collect`: needs all 64 bits
    run = write_run(tmp_path / "run", _split(values, 5))
    passes, largest = [0], [0]
    real = distribution._arrays

    def counting(parts, column, batch_rows, nulls=None):
        passes[0] += 1
        for batch in real(parts, column, batch_rows, nulls):
            largest[0] = max(largest[0], batch.size)
            yield batch

    monkeypatch.setattr(distribution, "_arrays", counting)
    got = perplexity_distribution(run, KEY, COLUMN, CONFIG, batch_rows=500, collect=8)
    assert got == in_memory(run, KEY, COLUMN, CONFIG)
    assert largest[0] <= 500 and 3 <= passes[0] <= 6
