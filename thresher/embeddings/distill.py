"""Judge distillation: a ridge-regression head on frozen embeddings that predicts a judge's score.

The FineWeb-Edu recipe (Penedo et al. 2024): an LLM judges a sample of documents, a regression
head on a frozen embedding model learns those judgments, and the head then scores the whole
corpus at embedding cost. Here:

    sample   rows of `<table>_scored` where the target (a judge score column such as
             `judge_edu_score`, or any SQL expression) and the embedding are both present; at
             most `sample` of them, chosen by a seeded hash of doc_id; a seeded `holdout_fraction`
             of those is held out.
    fit      ridge regression in closed form (numpy; the penalty chosen from `alphas` by k-fold
             cross-validation on the training rows, folds by a seeded hash), on the embeddings as
             they are (unit vectors) with an intercept. Predictions are clipped to the range of
             the training targets.
    report   held-out agreement with the judge: Spearman and Pearson correlation, MAE and RMSE
             (next to the MAE of always predicting the training mean), and precision / recall /
             F1 / accuracy of "score >= positive_threshold" (default: the training median;
             FineWeb-Edu keeps >= 3), plus agreement of the rounded scores.
    save     <run>/models/distilled_<name>/<head_hash>/head.npz (weights, bias) + head.json (what
             it was trained on, its settings, the embedding settings, the metrics); `latest.json`
             next to them names the newest head. No pickle: numpy arrays and JSON only.
    score    `DistilledScorer(head=...)` scores rows (`distilled_<name>_score`): from the run's
             embedding sidecar when the batch carries the vector column, else by embedding `text`
             with the head's own embedding settings.

    distill/reports/<name>.parquet       one row per split (cross-validation, held-out) and metric set
    distill/reports/<name>.md            the same as Markdown
    distill/predictions/<name>.parquet   doc_id, split, target, prediction of every sampled row
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher import __version__
from thresher.dsir.resample import uniform_noise
from thresher.embeddings.apply import StaleEmbeddingsError, embedding_parts
from thresher.embeddings.config import DistillConfig
from thresher.embeddings.scorer import EmbeddingScorer, arrow_to_vectors
from thresher.embeddings.semdedup import resolve_seed
from thresher.scorers.apply import score_cache_key
from thresher.scorers.base import ScorerBase, check_output, scorer_key, scorer_params_hash
from thresher.storage.catalog import open_catalog
from thresher.storage.parquet_io import AtomicParquetWriter, read_cache_key, write_json_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import single_statement

HEAD_FORMAT = "thresher-ridge-head/1"
REPORT_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),  # cross_validation (training rows) or heldout
    pa.field("rows", pa.int64(), nullable=False),
    pa.field("alpha", pa.float64(), nullable=False),
    pa.field("spearman", pa.float64()),
    pa.field("pearson", pa.float64()),
    pa.field("mae", pa.float64()),
    pa.field("rmse", pa.float64()),
    pa.field("baseline_mae", pa.float64()),
    pa.field("positive_threshold", pa.float64()),
    pa.field("precision", pa.float64()),
    pa.field("recall", pa.float64()),
    pa.field("f1", pa.float64()),
    pa.field("accuracy", pa.float64()),
    pa.field("rounded_agreement", pa.float64()),
    pa.field("head_hash", pa.string(), nullable=False),
], metadata={"thresher.table": "distill_reports"})
PREDICTIONS_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),  # train or heldout
    pa.field("target", pa.float64(), nullable=False),
    pa.field("prediction", pa.float64(), nullable=False),
], metadata={"thresher.table": "distill_predictions"})


class DistillError(ValueError):
    """A distillation that cannot run; the message says why."""


# -- ridge regression -------------------------------------------------------------------------------


@dataclass
class RidgeFit:
    weights: np.ndarray  # (d,)
    bias: float
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) @ self.weights + self.bias


def _ridge_solutions(x: np.ndarray, y: np.ndarray, alphas: list[float]) -> list[RidgeFit]:
    """Ridge fits with an unpenalised intercept for every alpha, from one eigendecomposition."""
    x = x.astype(np.float64)
    mu, y_mean = x.mean(axis=0), float(y.mean())
    xc, yc = x - mu, y - y_mean
    eigenvalues, vectors = np.linalg.eigh(xc.T @ xc)
    projected = vectors.T @ (xc.T @ yc)
    fits = []
    for alpha in alphas:
        denominator = eigenvalues + alpha
        safe = np.where(denominator > 1e-12, denominator, np.inf)  # alpha 0 on a rank-deficient X: least norm
        w = vectors @ (projected / safe)
        fits.append(RidgeFit(w, y_mean - float(mu @ w), float(alpha)))
    return fits


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: list[float], fold_of: np.ndarray, folds: int
              ) -> tuple[RidgeFit, dict[float, float], np.ndarray]:
    """The penalty with the lowest cross-validated MSE, the fit on all rows with it, the CV MSE of
    each alpha, and the out-of-fold predictions of the chosen alpha."""
    errors = {a: 0.0 for a in alphas}
    out_of_fold = {a: np.zeros(len(y)) for a in alphas}
    used = [f for f in range(folds) if (fold_of == f).any() and (fold_of != f).sum() >= 2]
    for f in used:
        test = fold_of == f
        for fit in _ridge_solutions(x[~test], y[~test], alphas):
            prediction = fit.predict(x[test])
            out_of_fold[fit.alpha][test] = prediction
            errors[fit.alpha] += float(((prediction - y[test]) ** 2).sum())
    tested = sum(int((fold_of == f).sum()) for f in used) or 1
    errors = {a: e / tested for a, e in errors.items()}
    best = min(alphas, key=lambda a: (errors[a], -a))  # ties: the stronger penalty
    (final,) = _ridge_solutions(x, y, [best])
    return final, errors, out_of_fold[best]


# -- metrics ----------------------------------------------------------------------------------------


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e - 1) / 2.0 + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def agreement(y: np.ndarray, prediction: np.ndarray, *, threshold: float, baseline: float) -> dict[str, Any]:
    """How well `prediction` agrees with the judge's `y` (see the module doc)."""
    y, prediction = np.asarray(y, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    positive, predicted = y >= threshold, prediction >= threshold
    tp = int((positive & predicted).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / int(positive.sum()) if positive.any() else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    spearman = _pearson(_ranks(y), _ranks(prediction))
    return {
        "rows": len(y),
        "spearman": spearman,
        "pearson": _pearson(y, prediction),
        "mae": float(np.abs(prediction - y).mean()) if len(y) else None,
        "rmse": float(np.sqrt(((prediction - y) ** 2).mean())) if len(y) else None,
        "baseline_mae": float(np.abs(baseline - y).mean()) if len(y) else None,
        "positive_threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float((positive == predicted).mean()) if len(y) else None,
        "rounded_agreement": float((np.round(prediction) == np.round(y)).mean()) if len(y) else None,
    }


# -- the head on disk -------------------------------------------------------------------------------


def head_root(run: RunDir, name: str) -> Path:
    return run.root / "models" / f"distilled_{name}"


def _embed_params(scorer: EmbeddingScorer) -> dict:
    return {f.name: getattr(scorer, f.name) for f in dataclasses.fields(scorer) if f.init}


def save_head(directory: Path, fit: RidgeFit, metadata: dict) -> tuple[Path, str]:
    """Write head.npz + head.json into directory/<head_hash>/ and point latest.json at it."""
    weights = np.ascontiguousarray(fit.weights, dtype=np.float64)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(weights.tobytes())
    digest.update(np.float64(fit.bias).tobytes())
    digest.update(json.dumps({k: metadata[k] for k in ("target", "name", "embedding")}, sort_keys=True,
                             default=str).encode())
    head_hash = digest.hexdigest()
    out = directory / head_hash
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "head.npz.tmp.npz"
    np.savez(tmp, weights=weights, bias=np.float64(fit.bias))
    tmp.replace(out / "head.npz")
    write_json_atomic(out / "head.json", {**metadata, "format": HEAD_FORMAT, "head_hash": head_hash,
                                          "alpha": fit.alpha, "dimension": len(weights)})
    write_json_atomic(directory / "latest.json", {"head_hash": head_hash, "path": head_hash})
    return out, head_hash


def resolve_head(path: str | Path) -> Path:
    """A head directory (with head.json), or the newest head under a distilled_<name>/ directory."""
    path = Path(path).expanduser()
    if (path / "head.json").is_file():
        return path.resolve()
    if path.name == "head.json" and path.is_file():
        return path.parent.resolve()
    latest = path / "latest.json"
    if latest.is_file():
        return (path / json.loads(latest.read_text(encoding="utf-8"))["path"]).resolve()
    raise FileNotFoundError(f"{path} is not a distilled head (no head.json, no latest.json)")


def load_head(path: str | Path) -> tuple[dict, RidgeFit]:
    directory = resolve_head(path)
    meta = json.loads((directory / "head.json").read_text(encoding="utf-8"))
    if meta.get("format") != HEAD_FORMAT:
        raise DistillError(f"{directory}: unknown head format {meta.get('format')!r}")
    with np.load(directory / "head.npz") as arrays:
        fit = RidgeFit(arrays["weights"].astype(np.float64), float(arrays["bias"]), float(meta["alpha"]))
    return meta, fit


# -- the scorer ---------------------------------------------------------------------------------------


_heads: dict[tuple[str, str], tuple[dict, RidgeFit]] = {}


@dataclass(frozen=True)
class DistilledScorer(ScorerBase):
    """Scores rows with a distilled head: `distilled_<name>_score` (see the module doc)."""

    version: ClassVar[str] = "1"
    output_columns: ClassVar[tuple[str, ...]] = ("{name}_score",)
    column_params: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"head": "the head's name names the column: distilled_<head name>_score"})

    head: str
    """A head directory (…/distilled_<name>/<hash>) or its distilled_<name>/ parent (the newest head)."""
    batch_size: int = 64
    """Embedding batch size when the scorer embeds text itself."""
    head_hash: str = field(init=False, default="")
    head_name: str = field(init=False, default="")

    def __post_init__(self) -> None:
        directory = resolve_head(self.head)
        meta = json.loads((directory / "head.json").read_text(encoding="utf-8"))
        object.__setattr__(self, "head", str(directory))
        object.__setattr__(self, "head_hash", meta["head_hash"])
        object.__setattr__(self, "head_name", meta["name"])

    @property
    def name(self) -> str:
        return f"distilled_{self.head_name}"

    @property
    def score_column(self) -> str:
        return f"{self.name}_score"

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field("doc_id", pa.string(), nullable=False), pa.field(self.score_column, pa.float32())])

    def loaded(self) -> tuple[dict, RidgeFit]:
        key = (self.head, self.head_hash)
        if key not in _heads:
            meta, fit = load_head(self.head)
            if meta["head_hash"] != self.head_hash:
                raise DistillError(f"{self.head} changed since this scorer was built")
            _heads[key] = (meta, fit)
        return _heads[key]

    def embedding_scorer(self) -> EmbeddingScorer:
        meta, _ = self.loaded()
        params = dict(meta["embedding"]["params"])
        params["batch_size"] = self.batch_size
        scorer = EmbeddingScorer(**params)
        if scorer.model_fingerprint != meta["embedding"]["model_fingerprint"]:
            raise DistillError(f"head {self.head_hash} was trained on embeddings of another copy of "
                               f"{params['model']!r} (model files differ)")
        return scorer

    @property
    def vector_column(self) -> str:
        return self.loaded()[0]["embedding"]["vector_column"]

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        meta, fit = self.loaded()
        low, high = meta["target_range"]
        return np.clip(fit.predict(vectors), low, high)

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        column = self.vector_column
        if column in batch.schema.names:
            vectors, valid = arrow_to_vectors(batch.column(column))
        else:
            encoded_scorer = self.embedding_scorer()
            source = encoded_scorer.text_column if encoded_scorer.text_column in batch.schema.names else "text"
            texts = batch.column(source).to_pylist()
            valid = np.array([t is not None for t in texts], dtype=bool)
            vectors = np.zeros((batch.num_rows, encoded_scorer.dimension), dtype=np.float32)
            if valid.any():
                vectors[valid] = encoded_scorer.embed([t for t in texts if t is not None]).vectors
        scores = self.predict(vectors).astype(np.float32)
        return pa.RecordBatch.from_arrays(
            [batch.column("doc_id"), pa.array(scores, pa.float32(), mask=~valid if not valid.all() else None)],
            schema=self.output_schema)


def distilled_cache_key(run: RunDir, scorer: DistilledScorer, embed_scorer: EmbeddingScorer, shard_id: str) -> str:
    embed_key = read_cache_key(run.score_part(scorer_key(embed_scorer), shard_id))
    return f"{scorer_key(scorer)}:{scorer_params_hash(scorer)}<-{embed_key}"


def score_shard_from_embeddings(run: RunDir, scorer: DistilledScorer, embed_scorer: EmbeddingScorer,
                                table: str, shard_id: str) -> dict:
    """Score one shard from its embedding sidecar (same rows, same order as the data shard)."""
    source_path = run.score_part(scorer_key(embed_scorer), shard_id)
    if read_cache_key(source_path) != score_cache_key(run, embed_scorer, table, shard_id):
        raise StaleEmbeddingsError(f"{source_path} is missing or holds embeddings of other settings: "
                                   "embed the run first")
    key = distilled_cache_key(run, scorer, embed_scorer, shard_id)
    out_path = run.score_part(scorer_key(scorer), shard_id)
    source = pq.ParquetFile(source_path)
    base = {"scorer": scorer_key(scorer), "table": table, "shard_id": shard_id, "rows": source.metadata.num_rows}
    if read_cache_key(out_path) == key:
        return {**base, "seconds": 0.0, "skipped": True}
    started = time.perf_counter()
    with AtomicParquetWriter(out_path, scorer.output_schema, key) as writer:
        for batch in source.iter_batches(batch_size=8192, columns=["doc_id", embed_scorer.vector_column]):
            batch = pa.RecordBatch.from_arrays(batch.columns, names=["doc_id", scorer.vector_column])
            writer.write(check_output(scorer, batch, scorer.score(batch)))
    return {**base, "seconds": round(time.perf_counter() - started, 3), "skipped": False}


# -- the whole distillation -------------------------------------------------------------------------



def sample_rows(run: RunDir, config: DistillConfig, scorer: EmbeddingScorer, seed: int
                ) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """(doc_ids sorted, targets, vectors, rows available) of the seeded training + held-out sample."""
    view = f'"{config.table}_scored"'
    vector = '"' + scorer.vector_column + '"'
    target = single_statement(config.target, "SELECT {} AS t", label="target", error=DistillError)
    where = ""
    if config.where:
        where = f" AND ({single_statement(config.where, 'SELECT 1 WHERE ({})', label='where', error=DistillError)})"
    stream = f"distill-sample/{config.head_name}"
    sql = (f"SELECT doc_id, CAST(({target}) AS DOUBLE) AS y FROM {view} "
           f"WHERE {vector} IS NOT NULL AND ({target}) IS NOT NULL{where}")
    ids: list[str] = []
    ys, keys = [], []
    available = 0
    with open_catalog(run) as con:
        try:
            reader = con.sql(sql).to_arrow_reader(65_536)
        except duckdb.Error as exc:
            raise DistillError(f"distill {config.head_name!r}: {exc}\n  query: {sql}") from None
        for batch in reader:
            batch_ids = batch.column(0).to_pylist()
            y = batch.column(1).to_numpy(zero_copy_only=False).astype(np.float64)
            finite = np.isfinite(y)
            batch_ids = [d for d, ok in zip(batch_ids, finite) if ok]
            y = y[finite]
            available += len(y)
            ids += batch_ids
            ys.append(y)
            keys.append(uniform_noise(batch_ids, seed, stream))
            if len(ids) > 2 * config.sample:  # keep the `sample` smallest keys
                all_keys = np.concatenate(keys)
                keep = np.argsort(all_keys, kind="stable")[: config.sample]
                ids, ys, keys = [ids[i] for i in keep], [np.concatenate(ys)[keep]], [all_keys[keep]]
        if not ids:
            raise DistillError(f"distill {config.head_name!r}: no row of {config.table} has both "
                               f"{config.target} and an embedding: run the judge (and embed) first")
        all_keys = np.concatenate(keys)
        keep = np.sort(np.argsort(all_keys, kind="stable")[: config.sample])
        ids = [ids[i] for i in keep]
        y = np.concatenate(ys)[keep]
        con.register("distill_sample", pa.table({"doc_id": pa.array(ids, pa.string())}))
        table = con.sql(f"SELECT doc_id, {vector} AS v FROM {view} WHERE doc_id IN "
                        "(SELECT doc_id FROM distill_sample)").to_arrow_table()
        con.unregister("distill_sample")
    vectors, _ = arrow_to_vectors(table.column("v"))
    position = {d: i for i, d in enumerate(table.column("doc_id").to_pylist())}
    order = np.argsort(np.array(ids), kind="stable")
    ids = [ids[i] for i in order]
    return ids, y[order], vectors[[position[d] for d in ids]], available


def distill(run: RunDir, config: DistillConfig, scorer: EmbeddingScorer) -> dict:
    """Sample, fit, evaluate and save a head for `config.target`; returns the head's metadata."""
    embedding_parts(run, scorer, config.table)
    seed = resolve_seed(run, config.seed)
    started = time.perf_counter()
    ids, y, x, available = sample_rows(run, config, scorer, seed)
    heldout = uniform_noise(ids, seed, f"distill-holdout/{config.head_name}") < config.holdout_fraction
    if heldout.all() or not heldout.any() or (~heldout).sum() < config.folds:
        raise DistillError(f"distill {config.head_name!r}: {len(ids)} sampled rows are too few to hold out "
                           f"{config.holdout_fraction:.0%} and cross-validate over {config.folds} folds")
    train = ~heldout
    fold_of = np.floor(uniform_noise([d for d, t in zip(ids, train) if t], seed,
                                     f"distill-folds/{config.head_name}") * config.folds).astype(int)
    fit, cv_errors, out_of_fold = fit_ridge(x[train], y[train], sorted(config.alphas), fold_of, config.folds)
    target_range = (float(y[train].min()), float(y[train].max()))
    threshold = config.positive_threshold if config.positive_threshold is not None else float(np.median(y[train]))
    baseline = float(y[train].mean())
    predicted = np.clip(fit.predict(x), *target_range)
    cv_metrics = agreement(y[train], np.clip(out_of_fold, *target_range), threshold=threshold, baseline=baseline)
    heldout_metrics = agreement(y[heldout], predicted[heldout], threshold=threshold, baseline=baseline)
    metadata = {
        "name": config.head_name,
        "target": config.target,
        "table": config.table,
        "where": config.where,
        "seed": seed,
        "config": config.model_dump(mode="json"),
        "rows_available": available,
        "rows_train": int(train.sum()),
        "rows_heldout": int(heldout.sum()),
        "target_range": list(target_range),
        "cv_mse": {str(a): round(e, 6) for a, e in cv_errors.items()},
        "embedding": {"scorer": scorer_key(scorer), "params": _embed_params(scorer),
                      "params_hash": scorer_params_hash(scorer), "model_fingerprint": scorer.model_fingerprint,
                      "vector_column": scorer.vector_column, "dimension": scorer.dimension},
        "metrics": {"cross_validation": cv_metrics, "heldout": heldout_metrics},
        "thresher_version": __version__,
    }
    directory, head_hash = save_head(head_root(run, config.head_name), fit, metadata)
    name = config.head_name
    report_rows = [{"name": name, "target": config.target, "split": split, "alpha": fit.alpha,
                    "head_hash": head_hash, **metrics}
                   for split, metrics in (("cross_validation", cv_metrics), ("heldout", heldout_metrics))]
    report_dir, predictions_dir = run.root / "distill" / "reports", run.root / "distill" / "predictions"
    with AtomicParquetWriter(report_dir / f"{name}.parquet", REPORT_SCHEMA) as writer:
        writer.write(pa.RecordBatch.from_pylist(report_rows, schema=REPORT_SCHEMA))
    with AtomicParquetWriter(predictions_dir / f"{name}.parquet", PREDICTIONS_SCHEMA) as writer:
        writer.write(pa.record_batch([
            pa.array([name] * len(ids), pa.string()), pa.array(ids, pa.string()),
            pa.array(np.where(heldout, "heldout", "train"), pa.string()), pa.array(y, pa.float64()),
            pa.array(predicted, pa.float64())], schema=PREDICTIONS_SCHEMA))
    result = {**metadata, "head_hash": head_hash, "head_dir": str(directory), "alpha": fit.alpha,
              "seconds": round(time.perf_counter() - started, 3)}
    (report_dir / f"{name}.md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(result: dict) -> str:
    """The distillation report (also a Prefect artifact)."""
    def cell(value) -> str:
        return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))

    keys = ("rows", "spearman", "pearson", "mae", "baseline_mae", "rmse", "f1", "precision", "recall", "accuracy",
            "rounded_agreement")
    lines = [f"# Distilled `{result['target']}` → `distilled_{result['name']}_score`", "",
             f"head `{result['head_hash']}` (ridge, alpha {result['alpha']:g}) on `{result['embedding']['scorer']}`; "
             f"{result['rows_train']:,} training and {result['rows_heldout']:,} held-out rows sampled from "
             f"{result['rows_available']:,} (seed {result['seed']}); positive = score ≥ "
             f"{result['metrics']['heldout']['positive_threshold']:g}", "",
             "| split | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for split, metrics in result["metrics"].items():
        lines.append(f"| {split} | " + " | ".join(cell(metrics.get(k)) for k in keys) + " |")
    lines += ["", "cross-validated MSE by alpha: " + ", ".join(f"{a}: {e}" for a, e in result["cv_mse"].items()), ""]
    return "\n".join(lines)
