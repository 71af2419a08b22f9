"""Composite scores: several judge columns and cheap signals of a run combined into one versioned
score column, `scores/<name>@<version>/part-<shard>.parquet` (`<name>_score`, `<name>_inputs`).

Inputs are SQL expressions over the catalog's `<table>_scored` view (a judge's `judge_alpagasus_score`,
`ifd_score` with direction "lower", `ln(1 + length(output))` for length, a distilled head, ...). Each
is z-scored with the mean and standard deviation of the whole table, sign-flipped when lower is
better, and then combined in one of two ways:

- `zscore`: the mean of the available z-scores (no labels needed). Small judges err in different
  places, so the mean of several ranks better than any one of them (issue 15: a z-scored sum of three
  0.5B judges beat each of them on human-ranked pairs).
- `logistic`: P(positive) from a logistic regression on the z-scores, fitted on a label file joined
  by doc_id (seeded held-out split; a missing input counts as the table mean, z = 0). The weights,
  the held-out AUC and log-loss of the composite and of each input alone are recorded.

A row with fewer than `min_inputs` inputs present gets a NULL score and its count in
`<name>_inputs`, never a silently invented number; every row of the table gets a row in the
sidecar. The fitted statistics and weights are JSON in each part's Parquet metadata
(`thresher.composite`) and in `composites/<name>@<version>.json` (not beside the parts: a sidecar
directory holds Parquet only, so it reads as one dataset). A version's definition
(inputs, method, labels) is fixed: changing it under the same version is refused, so a score column
never silently changes meaning; changed data under an unchanged definition is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from thresher.config_base import StrictModel
from thresher.storage.catalog import open_catalog
from thresher.storage.parquet_io import write_json_atomic, write_table_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import quote_ident, single_statement

# Bumped when the computation from a definition and its fitted numbers to the scores changes.
CODE_VERSION = "1"
METADATA_KEY = b"thresher.composite"
SPEC_DIR = "composites"


class CompositeInput(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$", description="a short label (reports, weights)")
    sql: str = Field(min_length=1, description="an expression over <table>_scored, e.g. judge_alpagasus_score")
    direction: Literal["higher", "lower"] = Field("higher", description="which end of the input is better")


class CompositeConfig(StrictModel):
    """One composite score (`thresher judge composite`)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="scorer name: scores/<name>@<version>/")
    version: str = Field("1", pattern=r"^\d+(\.\d+)*$")
    table: Literal["instructions", "documents"] = "instructions"
    inputs: list[CompositeInput] = Field(min_length=1)
    method: Literal["zscore", "logistic"] = "zscore"
    min_inputs: int | None = Field(None, gt=0, description="inputs a row needs for a score (default: all)")
    labels_path: str | None = Field(None, description="logistic: a file with doc_id and a label column")
    label_column: str = "label"
    positive_threshold: float | None = Field(None, description="graded labels >= this are positive (default: median)")
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    l2: float = Field(0.01, ge=0, description="logistic: L2 penalty on the weights")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> CompositeConfig:
        if (self.method == "logistic") != (self.labels_path is not None):
            raise ValueError("method logistic needs labels_path, and only it uses labels")
        if len({i.name for i in self.inputs}) != len(self.inputs):
            raise ValueError("composite input names must be distinct")
        if self.min_inputs is not None and self.min_inputs > len(self.inputs):
            raise ValueError(f"min_inputs {self.min_inputs} > {len(self.inputs)} inputs")
        for item in self.inputs:
            single_statement(item.sql, "SELECT {} FROM t", label=f"composite input {item.name}")
        return self

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def required_inputs(self) -> int:
        return self.min_inputs or len(self.inputs)

    def definition_hash(self) -> str:
        # The labels file is named by path only: its content is data, like the run's own.
        spec = self.model_dump(exclude={"version"})
        return hashlib.blake2b(json.dumps([CODE_VERSION, spec], sort_keys=True).encode(), digest_size=8).hexdigest()


def _select_inputs(config: CompositeConfig) -> str:
    return ", ".join(f"({i.sql})::DOUBLE AS {quote_ident('x_' + i.name)}" for i in config.inputs)


def _signs(config: CompositeConfig) -> np.ndarray:
    return np.array([1.0 if i.direction == "higher" else -1.0 for i in config.inputs])


def standardise(config: CompositeConfig, fitted: dict, raw: np.ndarray) -> np.ndarray:
    """Signed z-scores (NaN where an input is missing); `raw` is rows x inputs."""
    mean = np.array([fitted["inputs"][i.name]["mean"] for i in config.inputs])
    std = np.array([fitted["inputs"][i.name]["std"] for i in config.inputs])
    return (raw - mean) / std * _signs(config)


def combine(config: CompositeConfig, fitted: dict, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score, number of inputs present) for each row of `raw` (rows x inputs, NaN = missing)."""
    from thresher.judges.fitting import sigmoid

    z = standardise(config, fitted, raw)
    present = (~np.isnan(z)).sum(axis=1)
    if config.method == "zscore":
        with np.errstate(invalid="ignore"):
            score = np.where(present > 0, np.nansum(z, axis=1) / np.maximum(present, 1), math.nan)
    else:
        weights = np.array([fitted["weights"][i.name] for i in config.inputs])
        score = sigmoid(np.nan_to_num(z, nan=0.0) @ weights + fitted["intercept"])
    return np.where(present >= config.required_inputs, score, math.nan), present


def _input_stats(con, config: CompositeConfig) -> dict:
    columns = [quote_ident("x_" + i.name) for i in config.inputs]
    aggregates = ", ".join(f"avg({c}), stddev_pop({c}), count({c})" for c in columns)
    values = con.execute(f"SELECT {aggregates}, count(*) FROM (SELECT {_select_inputs(config)} "
                         f"FROM {quote_ident(config.table + '_scored')})").fetchall()[0]
    stats = {}
    for k, item in enumerate(config.inputs):
        mean, std, count = values[3 * k : 3 * k + 3]
        if not count or not std or not math.isfinite(std):
            raise ValueError(f"composite input {item.name} ({item.sql}) is {'missing' if not count else 'constant'} "
                             f"in {config.table}: it cannot be z-scored")
        stats[item.name] = {"mean": float(mean), "std": float(std), "count": int(count)}
    return {"rows": int(values[-1]), "inputs": stats}


def _read_labels(config: CompositeConfig) -> dict[str, float]:
    import duckdb

    path = Path(config.labels_path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist")
    reader = {"parquet": "read_parquet", "csv": "read_csv_auto", "json": "read_json_auto",
              "jsonl": "read_json_auto"}.get(path.suffix.lstrip(".").lower())
    if reader is None:
        raise ValueError(f"label file {path}: expected .parquet, .csv, .json or .jsonl")
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT CAST(doc_id AS VARCHAR), CAST({quote_ident(config.label_column)} AS DOUBLE) "
                           f"FROM {reader}(?) WHERE {quote_ident(config.label_column)} IS NOT NULL",
                           [str(path)]).fetchall()
    finally:
        con.close()
    return dict(rows)


def _fit_logistic(con, config: CompositeConfig, fitted: dict) -> dict:
    from thresher.judges.calibrate import positives
    from thresher.judges.fitting import group_holdout, log_loss, logistic_fit, sigmoid
    from thresher.judges.metrics import roc_auc

    labels = _read_labels(config)
    result = con.execute(f"SELECT doc_id, {_select_inputs(config)} FROM {quote_ident(config.table + '_scored')} "
                         "WHERE doc_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY doc_id", [sorted(labels)]).fetchall()
    if not result:
        raise ValueError(f"no row of {config.table} has a label in {config.labels_path} (joined on doc_id)")
    ids = [r[0] for r in result]
    raw = np.array([[math.nan if v is None else v for v in r[1:]] for r in result], dtype=float)
    _, positive = positives([labels[i] for i in ids], config.positive_threshold)
    y = positive.astype(float)
    z = np.nan_to_num(standardise(config, fitted, raw), nan=0.0)
    held = group_holdout(ids, config.holdout_fraction, config.seed)
    if len(set(y[~held].tolist())) < 2:
        raise ValueError("the fitting part of the labelled rows has a single class: label more rows")
    w, b = logistic_fit(z[~held], y[~held], l2=config.l2)
    p = sigmoid(z[held] @ w + b)
    holdout = {"n": int(held.sum()), "auc": roc_auc(p, y[held]), "log_loss": log_loss(p, y[held]),
               "auc_by_input": {i.name: roc_auc(z[held, k], y[held]) for k, i in enumerate(config.inputs)}}
    w, b = logistic_fit(z, y, l2=config.l2)  # the written weights use every labelled row
    return {"weights": {i.name: float(w[k]) for k, i in enumerate(config.inputs)}, "intercept": b,
            "labelled": len(ids), "n_train": int((~held).sum()), "holdout": holdout}


def fit_composite(run: RunDir, config: CompositeConfig) -> dict:
    """The composite's fitted numbers (input means/stds, and weights for `logistic`), as JSON, after
    checking that `config.key` is not already defined differently in this run."""
    spec_path = run.root / SPEC_DIR / f"{config.key}.json"
    if spec_path.is_file():
        recorded = json.loads(spec_path.read_text(encoding="utf-8"))
        if recorded.get("definition") != config.definition_hash():
            raise ValueError(f"{config.key} already exists with another definition (inputs, method or labels): "
                             "give the changed composite a new version")
    with open_catalog(run) as con:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        if f"{config.table}_scored" not in views:
            raise ValueError(f"{run.root} has no {config.table} to combine scores of")
        fitted = {"code_version": CODE_VERSION, "definition": config.definition_hash(), **_input_stats(con, config)}
        if config.method == "logistic":
            fitted.update(_fit_logistic(con, config, fitted))
    write_json_atomic(spec_path, {"config": config.model_dump(), **fitted})
    return fitted


def shard_cache_key(run: RunDir, config: CompositeConfig, fitted: dict, shard_id: str) -> str:
    """Definition + fitted numbers + the shard's content. The fitted numbers (means and standard
    deviations over every row) change with any input value, so they stand in for the inputs."""
    from thresher.storage.readers import file_fingerprint

    digest = hashlib.blake2b(json.dumps(fitted, sort_keys=True).encode(), digest_size=8).hexdigest()
    return f"{config.key}:{digest}<-{file_fingerprint(run.table_part(config.table, shard_id))}"


def output_schema(config: CompositeConfig, fitted: dict) -> pa.Schema:
    return pa.schema([pa.field("doc_id", pa.string(), nullable=False),
                      pa.field(f"{config.name}_score", pa.float64()),
                      pa.field(f"{config.name}_inputs", pa.int32(), nullable=False)],
                     metadata={METADATA_KEY: json.dumps({"config": config.model_dump(), **fitted},
                                                        sort_keys=True).encode()})


def write_composite_shard(run: RunDir, config: CompositeConfig, fitted: dict, shard_id: str,
                          cache_key: str) -> dict:
    """scores/<name>@<version>/part-<shard_id>.parquet: one row per row of the table's shard, in its
    order. The shard's rows and their inputs come through the catalog in one DuckDB query."""
    shard = run.table_part(config.table, shard_id)
    with open_catalog(run) as con:
        result = con.sql(
            f"SELECT t.doc_id, {_select_inputs(config)} FROM "
            "(SELECT doc_id, file_row_number FROM read_parquet($shard, file_row_number = true)) AS t "
            f"LEFT JOIN {quote_ident(config.table + '_scored')} USING (doc_id) ORDER BY t.file_row_number",
            params={"shard": str(shard)}).to_arrow_table()
    columns = [result.column(k + 1).to_numpy(zero_copy_only=False).astype(float) for k in range(len(config.inputs))]
    raw = np.column_stack(columns) if result.num_rows else np.empty((0, len(config.inputs)))
    score, present = combine(config, fitted, raw)
    schema = output_schema(config, fitted)
    table = pa.Table.from_arrays([result.column(0).cast(pa.string()), pa.array(score, pa.float64(), from_pandas=True),
                                  pa.array(present, pa.int32())], schema=schema)
    write_table_atomic(run.score_part(config.key, shard_id), table.to_batches(), schema, cache_key)
    return {"shard_id": shard_id, "rows": table.num_rows, "scored": table.num_rows - table.column(1).null_count}


def remove_stale_parts(run: RunDir, config: CompositeConfig, shard_ids: list[str]) -> None:
    """Parts of shards the table no longer has would join rows that are gone."""
    keep = {run.score_part(config.key, s).name for s in shard_ids}
    for part in (run.root / "scores" / config.key).glob("part-*.parquet"):
        if part.name not in keep:
            part.unlink()


def summary_markdown(config: CompositeConfig, fitted: dict, shards: list[dict]) -> str:
    rows = sum(s["rows"] for s in shards)
    scored = sum(s["scored"] for s in shards)
    lines = [f"# Composite `{config.key}` ({config.method})", "",
             f"{scored} of {rows} {config.table} rows scored (a row needs {config.required_inputs} of "
             f"{len(config.inputs)} inputs).", "", "| input | SQL | direction | mean | std | rows | weight |",
             "|---|---|---|---|---|---|---|"]
    for item in config.inputs:
        s = fitted["inputs"][item.name]
        weight = f"{fitted['weights'][item.name]:.3f}" if "weights" in fitted else "equal"
        lines.append(f"| {item.name} | `{item.sql}` | {item.direction} | {s['mean']:.4g} | {s['std']:.4g} | "
                     f"{s['count']} | {weight} |")
    if "holdout" in fitted:
        h = fitted["holdout"]
        alone = ", ".join(f"{k} {v:.3f}" for k, v in h["auc_by_input"].items())
        lines += ["", f"Held out ({h['n']} labelled rows): AUC {h['auc']:.3f}, log-loss {h['log_loss']:.3f}; "
                  f"each input alone: {alone}."]
    return "\n".join(lines) + "\n"
