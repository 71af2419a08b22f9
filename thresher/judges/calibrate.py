"""Judge calibration: how well a judge's scores agree with reference labels on a sample.

Reference labels come from a file (`doc_id` + a label column; Parquet, JSONL or CSV) joined to the
run's rows, or, when no annotations exist, from real-versus-degraded answers built from the run's
own instructions (`thresher.judges.degrade`). The sampled rows are judged through the judge's
cache, so rows the judge flow already judged cost nothing.

Metrics: Spearman's rho between score and label, ROC AUC (binary labels as they are; graded labels
split at `positive_threshold`, default their median), and the confusion matrix of the rounded
score against the label. Written to

    <run>/judge_calibration/metrics/<name>.parquet     one row: judge, n, spearman, auc, ...
    <run>/judge_calibration/confusion/<name>.parquet   (label, predicted, count) rows
    <run>/judge_calibration/rows/<name>.parquet        every sampled row with its score and label

(each directory is one catalog table: judge_calibration_metrics, _confusion, _rows), and published
as a Prefect markdown artifact when run inside a flow.

`fit_calibration` then fits a calibration (isotonic or logistic) on those labelled rows and writes
the calibrated score of every row of the judge's sidecar (see "fitting a calibration" below):

    <run>/judge_calibration/fit/<name>.parquet         Brier / log-loss on held-out rows, before and after
    <run>/judge_calibration/fits/<name>.json           the fitted parameters
    <run>/scores/<judge>_calibrated_<name>@1/part-*.parquet   doc_id, <judge>_calibrated_<name>_score
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.judges.degrade import degraded_pairs
from thresher.judges.metrics import confusion, roc_auc, spearman
from thresher.storage.parquet_io import write_json_atomic, write_table_atomic
from thresher.storage.run_dir import RunDir

CALIBRATION_DIR = "judge_calibration"

METRICS_SCHEMA = pa.schema([
    pa.field("calibration", pa.string(), nullable=False),
    pa.field("judge", pa.string(), nullable=False),
    pa.field("judge_version", pa.string(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("reference", pa.string(), nullable=False),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_scored", pa.int64(), nullable=False),
    pa.field("n_parse_errors", pa.int64(), nullable=False),
    pa.field("spearman", pa.float64()),
    pa.field("auc", pa.float64()),
    pa.field("positive_threshold", pa.float64()),
    pa.field("mean_score_positive", pa.float64()),
    pa.field("mean_score_negative", pa.float64()),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
])
CONFUSION_SCHEMA = pa.schema([
    pa.field("calibration", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("predicted", pa.int64(), nullable=False),
    pa.field("count", pa.int64(), nullable=False),
])
ROWS_SCHEMA = pa.schema([
    pa.field("calibration", pa.string(), nullable=False),
    pa.field("doc_id", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("label", pa.float64(), nullable=False),
    pa.field("score", pa.float64()),
    pa.field("parse_error", pa.string()),
])


@dataclass(frozen=True)
class Calibration:
    calibration: str
    judge: str
    judge_version: str
    model_id: str
    reference: str
    n: int
    n_scored: int
    n_parse_errors: int
    spearman: float
    auc: float
    positive_threshold: float
    mean_score_positive: float
    mean_score_negative: float
    confusion: list[tuple[int, int, int]]


def positives(labels: Sequence[float], positive_threshold: float | None = None) -> tuple[float, np.ndarray]:
    """The threshold and the positive mask: binary labels as they are; graded labels >= the
    threshold (default: their median)."""
    y = np.asarray(labels, dtype=float)
    binary = set(np.unique(y).tolist()) <= {0.0, 1.0}
    threshold = positive_threshold if positive_threshold is not None else (0.5 if binary else float(np.median(y)))
    return float(threshold), (y == 1.0 if binary else y >= threshold)


def compute(
    name: str, judge, scores: Sequence[float | None], labels: Sequence[float], *, reference: str,
    model_id: str = "", parse_errors: int = 0, positive_threshold: float | None = None,
) -> Calibration:
    s = np.array([math.nan if v is None else float(v) for v in scores])
    y = np.asarray(labels, dtype=float)
    threshold, positive = positives(y, positive_threshold)
    scored = ~np.isnan(s)
    if judge.score_range is not None:
        lo, hi = judge.score_range
    else:  # a score without a fixed scale (IFD): round within the observed range
        lo, hi = (math.floor(np.nanmin(s)), math.ceil(np.nanmax(s))) if scored.any() else (0, 0)
    predicted = np.clip(np.rint(s[scored]), lo, hi).astype(int)
    actual = np.rint(y[scored]).astype(int)

    def mean(mask: np.ndarray) -> float:
        values = s[mask & scored]
        return float(values.mean()) if len(values) else math.nan

    return Calibration(
        calibration=name,
        judge=judge.name,
        judge_version=judge.version,
        model_id=model_id,
        reference=reference,
        n=len(y),
        n_scored=int(scored.sum()),
        n_parse_errors=parse_errors,
        spearman=spearman(s, y),
        auc=roc_auc(s, positive.astype(int)),
        positive_threshold=float(threshold),
        mean_score_positive=mean(positive),
        mean_score_negative=mean(~positive),
        confusion=confusion(predicted.tolist(), actual.tolist()),
    )


def write(run: RunDir, result: Calibration, rows: Sequence[dict]) -> dict[str, Path]:
    """Write the three calibration tables for `result.calibration`; returns their paths."""
    root = run.root / CALIBRATION_DIR
    stem = result.calibration
    metrics = {k: v for k, v in asdict(result).items() if k != "confusion"}
    metrics["created_at"] = dt.datetime.now(dt.UTC)
    paths = {
        "metrics": root / "metrics" / f"{stem}.parquet",
        "confusion": root / "confusion" / f"{stem}.parquet",
        "rows": root / "rows" / f"{stem}.parquet",
    }
    write_table_atomic(paths["metrics"], pa.Table.from_pylist([metrics], METRICS_SCHEMA).to_batches(), METRICS_SCHEMA)
    conf = [{"calibration": stem, "label": a, "predicted": p, "count": n} for a, p, n in result.confusion]
    write_table_atomic(paths["confusion"], pa.Table.from_pylist(conf, CONFUSION_SCHEMA).to_batches(), CONFUSION_SCHEMA)
    detail = [{"calibration": stem, **{k: r.get(k) for k in ("doc_id", "kind", "label", "score", "parse_error")}}
              for r in rows]
    write_table_atomic(paths["rows"], pa.Table.from_pylist(detail, ROWS_SCHEMA).to_batches(), ROWS_SCHEMA)
    return paths


def markdown(result: Calibration) -> str:
    labels = sorted({a for a, _, _ in result.confusion})
    preds = sorted({p for _, p, _ in result.confusion})
    cells = {(a, p): n for a, p, n in result.confusion}
    table = ["| label \\ score | " + " | ".join(str(p) for p in preds) + " |",
             "|---|" + "---|" * len(preds)]
    for a in labels:
        table.append(f"| {a} | " + " | ".join(str(cells.get((a, p), 0)) for p in preds) + " |")
    return (
        f"# Calibration `{result.calibration}`\n\n"
        f"Judge `{result.judge}@{result.judge_version}` ({result.model_id}) against {result.reference}.\n\n"
        f"| n | scored | parse errors | Spearman | AUC | mean score (positive) | mean score (negative) |\n"
        f"|---|---|---|---|---|---|---|\n"
        f"| {result.n} | {result.n_scored} | {result.n_parse_errors} | {result.spearman:.3f} | {result.auc:.3f} | "
        f"{result.mean_score_positive:.3f} | {result.mean_score_negative:.3f} |\n\n"
        "## Confusion (rounded score against label)\n\n" + "\n".join(table) + "\n"
    )


# -- reference sets --------------------------------------------------------------------------------


def _con(run: RunDir):
    import duckdb

    con = duckdb.connect()
    con.execute("SET file_search_path = ?", [str(run.root)])
    return con


def sample_rows(run: RunDir, table: str, columns: Sequence[str], n: int, seed: int) -> list[dict]:
    """`n` rows of a run table, a seeded deterministic sample (ordered by a hash of doc_id)."""
    parts = sorted(str(p) for p in run.table_dir(table).glob("part-*.parquet"))
    if not parts:
        raise ValueError(f"{run.root} has no {table} to calibrate on")
    con = _con(run)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        result = con.execute(
            f"SELECT {cols} FROM read_parquet(?) ORDER BY hash(doc_id || ?) LIMIT ?", [parts, str(seed), n]
        )
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]
    finally:
        con.close()


def labelled_rows(run: RunDir, table: str, columns: Sequence[str], labels_path: str | Path, label_column: str,
                  n: int, seed: int) -> list[dict]:
    """Rows of a run table joined (by doc_id) to a label file, a seeded sample of at most `n`."""
    path = Path(labels_path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist")
    parts = sorted(str(p) for p in run.table_dir(table).glob("part-*.parquet"))
    reader = {"parquet": "read_parquet", "csv": "read_csv_auto", "json": "read_json_auto",
              "jsonl": "read_json_auto"}.get(path.suffix.lstrip(".").lower())
    if reader is None:
        raise ValueError(f"label file {path}: expected .parquet, .csv, .json or .jsonl")
    con = _con(run)
    try:
        cols = ", ".join(f'd."{c}"' for c in columns)
        result = con.execute(
            f'SELECT {cols}, CAST(l."{label_column}" AS DOUBLE) AS label FROM read_parquet(?) AS d '
            f"JOIN {reader}(?) AS l USING (doc_id) WHERE l.\"{label_column}\" IS NOT NULL "
            "ORDER BY hash(d.doc_id || ?) LIMIT ?",
            [parts, str(path), str(seed), n],
        )
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row)) for row in result.fetchall()]
    finally:
        con.close()
    if not rows:
        raise ValueError(f"no row of {table} has a label in {path} (joined on doc_id, column {label_column!r})")
    return rows


def degraded_reference(run: RunDir, n: int, seed: int) -> list[dict]:
    """`n` real instructions of the run and `n` degraded copies (label 1 / 0)."""
    candidates = sample_rows(run, "instructions", ["doc_id", "instruction", "input", "output"], max(4 * n, 200), seed)
    pairs = degraded_pairs(candidates, n, seed=seed)
    return [
        {"doc_id": candidates[p.source_index]["doc_id"], "kind": p.kind, "label": float(p.label), **p.fields()}
        for p in pairs
    ]


def calibrate_judge(
    run: RunDir, judge, *, name: str, labels_path: str | None = None, label_column: str = "label",
    degraded: int | None = None, sample: int = 200, seed: int = 0, positive_threshold: float | None = None,
) -> tuple[Calibration, dict[str, Path]]:
    """Judge a labelled sample of the run and write the calibration tables (see the module doc)."""
    if (labels_path is None) == (degraded is None):
        raise ValueError("give exactly one reference: a label file, or degraded=N (real vs degraded answers)")
    fields = [c for c in judge.input_columns if c != "doc_id"]
    if degraded is not None:
        if judge.table != "instructions":
            raise ValueError(f"{judge.name} judges {judge.table}: degraded answers apply to instruction judges only")
        rows = degraded_reference(run, degraded, seed)
        reference = f"{degraded} real answers vs {degraded} degraded (swap/truncate/shuffle), seed {seed}"
    else:
        rows = labelled_rows(run, judge.table, ["doc_id", *fields], labels_path, label_column, sample, seed)
        for row in rows:
            row.setdefault("kind", None)
        reference = f"labels {Path(labels_path).name}:{label_column} ({len(rows)} sampled rows, seed {seed})"
    if hasattr(judge, "judge_rows"):
        judged = judge.judge_rows(rows)
        scores = [j.score for j in judged]
        errors = [j.parse_error for j in judged]
        model_id = judge.get_backend().model_id
    else:  # IFD: lower is better-following; calibrate 1 - ifd so higher means better
        judged = judge.score_rows(rows)
        scores = [None if r["ifd"] is None else -r["ifd"] for r in judged]
        errors = [None] * len(rows)
        model_id = judge.get_backend().model_id
    for row, score, error in zip(rows, scores, errors):
        row["score"], row["parse_error"] = score, error
    result = compute(name, judge, scores, [r["label"] for r in rows], reference=reference, model_id=model_id,
                     parse_errors=sum(1 for e in errors if e), positive_threshold=positive_threshold)
    return result, write(run, result, rows)


def summary_json(result: Calibration) -> str:
    return json.dumps({k: v for k, v in asdict(result).items() if k != "confusion"}, indent=2, default=str)


# -- fitting a calibration -------------------------------------------------------------------------
#
# A calibration fitted on the labelled rows maps the judge's score to P(label is positive). It is
# evaluated on a seeded held-out part of those rows (whole doc_ids held out, so a real answer and its
# degraded copy never straddle the split) against the uncalibrated score read as a probability (its
# position on the judge's scale), then refitted on every labelled row and applied to every row of the
# judge's sidecar, written as the sidecar scores/<judge>_calibrated_<name>@<version>/. The fitted
# parameters are JSON (judge_calibration/fits/<name>.json and each part's metadata): the numbers
# themselves reproduce the mapping, no pickled model.

FIT_METHODS = ("isotonic", "logistic")
# Bumped when the mapping from fitted parameters to calibrated scores changes.
CALIBRATED_VERSION = "1"
FIT_METADATA = b"thresher.calibration"

FIT_SCHEMA = pa.schema([
    pa.field("calibration", pa.string(), nullable=False),
    pa.field("judge", pa.string(), nullable=False),
    pa.field("method", pa.string(), nullable=False),
    pa.field("sidecar", pa.string(), nullable=False),
    pa.field("n_train", pa.int64(), nullable=False),
    pa.field("n_holdout", pa.int64(), nullable=False),
    pa.field("brier_before", pa.float64()),
    pa.field("brier_after", pa.float64()),
    pa.field("log_loss_before", pa.float64()),
    pa.field("log_loss_after", pa.float64()),
    pa.field("rows_written", pa.int64(), nullable=False),
    pa.field("rows_calibrated", pa.int64(), nullable=False),
])


@dataclass(frozen=True)
class CalibrationFit:
    calibration: str
    judge: str
    method: str
    sidecar: str  # name@version of the calibrated sidecar
    n_train: int
    n_holdout: int
    brier_before: float
    brier_after: float
    log_loss_before: float
    log_loss_after: float
    rows_written: int
    rows_calibrated: int
    params: dict


def calibrated_name(judge_name: str, calibration: str) -> str:
    """The calibrated sidecar's scorer name (and column prefix): a plain SQL identifier."""
    return f"{judge_name}_calibrated_" + re.sub(r"[^a-z0-9_]", "_", calibration.lower())


def fit_params(method: str, scores: np.ndarray, y: np.ndarray) -> dict:
    """JSON parameters of a calibration of `scores` to binary `y` (see `apply_params`)."""
    from thresher.judges.fitting import isotonic_fit, logistic_fit

    if method == "isotonic":
        xs, ys = isotonic_fit(scores, y)
        # A block of only positives or only negatives would claim certainty that one more row can
        # refute (infinite log-loss): keep probabilities half a row away from 0 and 1.
        eps = 0.5 / (len(y) + 1)
        return {"method": method, "x": xs, "y": [min(max(v, eps), 1 - eps) for v in ys]}
    if method == "logistic":
        # The judge's raw scale is small (0-5), so Platt scaling on it needs no standardising; a weak
        # penalty keeps a perfectly separating judge finite.
        (slope,), intercept = logistic_fit(scores, y, l2=1e-3)
        return {"method": method, "slope": float(slope), "intercept": intercept}
    raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(FIT_METHODS)}")


def apply_params(params: dict, scores: Sequence[float | None]) -> np.ndarray:
    """Calibrated probabilities (NaN where the score is missing)."""
    from thresher.judges.fitting import isotonic_predict, sigmoid

    s = np.array([math.nan if v is None else float(v) for v in scores], dtype=float)
    out = np.full(len(s), math.nan)
    known = ~np.isnan(s)
    if params["method"] == "isotonic":
        out[known] = isotonic_predict(params["x"], params["y"], s[known])
    else:
        out[known] = sigmoid(params["slope"] * s[known] + params["intercept"])
    return out


def uncalibrated_probability(judge, scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The score read as a probability without fitting: its position on the judge's scale (for a
    judge without a fixed scale, such as -IFD, on the range of `reference`)."""
    lo, hi = judge.score_range if judge.score_range is not None else (float(reference.min()), float(reference.max()))
    return np.clip((scores - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.full(len(scores), 0.5)


def _score_sign(judge) -> float:
    # calibrate_judge calibrates -IFD (higher means better-following); the sidecar holds IFD itself.
    return 1.0 if hasattr(judge, "judge_rows") else -1.0


def fit_calibration(run: RunDir, judge, *, name: str, method: str, holdout_fraction: float = 0.3, seed: int = 0,
                    positive_threshold: float | None = None) -> CalibrationFit:
    """Fit `method` on the rows `calibrate_judge` wrote for calibration `name`, measure it on a
    held-out part, and write the calibrated scores of every row of the judge's sidecar."""
    import pyarrow.parquet as pq

    from thresher.judges.fitting import brier, group_holdout, log_loss

    rows_path = run.root / CALIBRATION_DIR / "rows" / f"{name}.parquet"
    if not rows_path.is_file():
        raise FileNotFoundError(f"no labelled rows for calibration {name!r} ({rows_path}); run calibrate_judge first")
    table = pq.read_table(rows_path, columns=["doc_id", "label", "score"]).to_pydict()
    scored = [i for i, s in enumerate(table["score"]) if s is not None and not math.isnan(s)]
    s = np.array([table["score"][i] for i in scored], dtype=float)
    _, positive = positives(table["label"], positive_threshold)
    y = positive[scored].astype(float)
    ids = [str(table["doc_id"][i]) for i in scored]
    held = group_holdout(ids, holdout_fraction, seed)
    train = ~held
    if len(set(y[train].tolist())) < 2:
        raise ValueError(f"calibration {name!r}: the fitting part of the labelled rows has a single class; "
                         "label more rows (or raise --sample / --degraded)")
    before = uncalibrated_probability(judge, s[held], s[train])
    after = apply_params(fit_params(method, s[train], y[train]), s[held])
    params = fit_params(method, s, y)  # the written calibration uses every labelled row
    key = f"{calibrated_name(judge.name, name)}@{CALIBRATED_VERSION}"
    record = {**params, "calibration": name, "judge": f"{judge.name}@{judge.version}", "score_sign": _score_sign(judge),
              "positive_threshold": positive_threshold, "n": len(y), "seed": seed, "holdout_fraction": holdout_fraction}
    written, calibrated = write_calibrated_sidecar(run, judge, key, record)
    result = CalibrationFit(
        calibration=name, judge=record["judge"], method=method, sidecar=key,
        n_train=int(train.sum()), n_holdout=int(held.sum()),
        brier_before=brier(before, y[held]), brier_after=brier(after, y[held]),
        log_loss_before=log_loss(before, y[held]), log_loss_after=log_loss(after, y[held]),
        rows_written=written, rows_calibrated=calibrated, params=record,
    )
    write_json_atomic(run.root / CALIBRATION_DIR / "fits" / f"{name}.json",
                      {k: v for k, v in asdict(result).items()})
    summary = [{k: v for k, v in asdict(result).items() if k != "params"}]
    write_table_atomic(run.root / CALIBRATION_DIR / "fit" / f"{name}.parquet",
                       pa.Table.from_pylist(summary, FIT_SCHEMA).to_batches(), FIT_SCHEMA)
    return result


def write_calibrated_sidecar(run: RunDir, judge, key: str, record: dict) -> tuple[int, int]:
    """scores/<key>/part-<shard>.parquet for every part of the judge's sidecar, one shard at a time;
    returns (rows written, rows with a calibrated score). A part whose cache key (source part
    fingerprint + fitted parameters) is unchanged is left as it is."""
    import pyarrow.parquet as pq

    from thresher.scorers.base import scorer_key
    from thresher.storage.parquet_io import read_cache_key
    from thresher.storage.readers import file_fingerprint

    source_dir = run.root / "scores" / scorer_key(judge)
    sources = sorted(source_dir.glob("part-*.parquet"))
    if not sources:
        raise FileNotFoundError(f"{judge.name} has no scores in {source_dir}: run `thresher judge run -j {judge.name}` "
                                "first, then calibrate")
    column = f"{judge.name}_score"
    prefix = key.partition("@")[0]
    schema = pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field(f"{prefix}_score", pa.float64())],
                       metadata={FIT_METADATA: json.dumps(record, sort_keys=True).encode()})
    params_hash = hashlib.blake2b(json.dumps(record, sort_keys=True).encode(), digest_size=8).hexdigest()
    out_dir = run.root / "scores" / key
    for stale in set(out_dir.glob("part-*.parquet")) - {out_dir / p.name for p in sources}:
        stale.unlink()  # a shard the judge's sidecar no longer has
    written = calibrated = 0
    for source in sources:
        target = out_dir / source.name
        cache_key = f"{key}:{params_hash}<-{file_fingerprint(source)}"
        parquet = pq.ParquetFile(source)
        if read_cache_key(target) != cache_key:
            def batches(parquet=parquet):
                for batch in parquet.iter_batches(columns=["doc_id", column]):
                    raw = [None if v is None else record["score_sign"] * v for v in batch.column(column).to_pylist()]
                    p = apply_params(record, raw)
                    yield pa.record_batch([batch.column("doc_id").cast(pa.string()),
                                           pa.array(p, pa.float64(), from_pandas=True)], schema=schema)
            write_table_atomic(target, batches(), schema, cache_key)
        counts = pq.read_table(target, columns=[f"{prefix}_score"]).column(0)
        written += len(counts)
        calibrated += len(counts) - counts.null_count
    return written, calibrated


def fit_markdown(fit: CalibrationFit) -> str:
    return (
        f"## Fitted calibration ({fit.method})\n\n"
        f"Written to `scores/{fit.sidecar}/` ({fit.rows_calibrated} of {fit.rows_written} rows have a score). "
        f"Held out: {fit.n_holdout} labelled rows (fitted on {fit.n_train}).\n\n"
        "| | Brier | log-loss |\n|---|---|---|\n"
        f"| uncalibrated (score on its scale) | {fit.brier_before:.4f} | {fit.log_loss_before:.4f} |\n"
        f"| calibrated | {fit.brier_after:.4f} | {fit.log_loss_after:.4f} |\n"
    )
