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
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.judges.degrade import degraded_pairs
from thresher.judges.metrics import confusion, roc_auc, spearman
from thresher.storage.parquet_io import write_table_atomic
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


def compute(
    name: str, judge, scores: Sequence[float | None], labels: Sequence[float], *, reference: str,
    model_id: str = "", parse_errors: int = 0, positive_threshold: float | None = None,
) -> Calibration:
    s = np.array([math.nan if v is None else float(v) for v in scores])
    y = np.asarray(labels, dtype=float)
    binary = set(np.unique(y).tolist()) <= {0.0, 1.0}
    threshold = positive_threshold if positive_threshold is not None else (0.5 if binary else float(np.median(y)))
    positive = y >= threshold if not binary else y == 1.0
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
