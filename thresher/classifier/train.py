"""Train a fastText quality classifier on labelled rows and report how well it agrees with them.

    sample   source judge: rows of `<table>_scored` where `target` is present, at most `sample` of
             them, chosen by a seeded hash of doc_id (as the distilled heads); positive when
             target >= positive_threshold (default: the training rows' median).
             source reference (DCLM): positives are the rows of the `reference` files and/or the
             run's rows matching `positive_where` (at most sample / 2, seeded); negatives an equal
             number (at most) of the run's other rows, a seeded sample of the pool.
             A seeded `holdout_fraction` of the sample is held out.
    train    floret in fastText mode, one thread and the seed: the same rows and seed give the same
             model file (its hash names its directory). Training rows are written in a seeded order
             (fastText reads its file in order and does not shuffle).
    report   on held-out rows (and, for reference, on the training rows): per class precision /
             recall / F1 at P(positive) >= 0.5, accuracy, ROC AUC of P(positive), and for a judge
             the Spearman correlation of P(positive) with the judge's score; how many labelled
             rows trained it.
    save     see thresher.classifier.scorer (model.bin, model.json, latest.json).

    classifier/reports/<name>.parquet       one row per split and class (positive, negative, all)
    classifier/reports/<name>.md            the same as Markdown
    classifier/predictions/<name>.parquet   doc_id, split, label, target, P(positive) of every sampled row
"""

from __future__ import annotations

import importlib.metadata
import math
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from thresher import __version__
from thresher.classifier.config import ClassifierConfig
from thresher.classifier.scorer import ClassifierError, model_root, positive_probability, save_model
from thresher.classifier.text import prediction_lines, training_lines
from thresher.config_base import IngestConfig
from thresher.dsir.resample import uniform_noise
from thresher.embeddings.semdedup import resolve_seed
from thresher.judges import metrics
from thresher.storage.catalog import open_catalog
from thresher.storage.formats import discover_shards
from thresher.storage.parquet_io import AtomicParquetWriter
from thresher.storage.readers import read_shard
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import single_statement

REPORT_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),  # train or heldout
    pa.field("class", pa.string(), nullable=False),  # positive, negative or all
    pa.field("rows", pa.int64(), nullable=False),  # rows of that class (all: of the split)
    pa.field("precision", pa.float64()),
    pa.field("recall", pa.float64()),
    pa.field("f1", pa.float64()),  # all: the macro average
    pa.field("accuracy", pa.float64()),
    pa.field("roc_auc", pa.float64()),
    pa.field("spearman", pa.float64()),
    pa.field("model_hash", pa.string(), nullable=False),
], metadata={"thresher.table": "classifier_reports"})
PREDICTIONS_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("positive", pa.bool_(), nullable=False),
    pa.field("target", pa.float64()),  # the judge's score (source judge)
    pa.field("probability", pa.float64(), nullable=False),
], metadata={"thresher.table": "classifier_predictions"})
READ_ROWS = 65_536


# -- metrics ----------------------------------------------------------------------------------------


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """P(a random positive scores above a random negative), ties counted half; None with one class."""
    auc = metrics.roc_auc(score, positive)
    return None if math.isnan(auc) else auc


def classification_metrics(positive: np.ndarray, probability: np.ndarray, target: np.ndarray | None = None) -> dict:
    """Per class precision / recall / F1 at P >= 0.5, accuracy, ROC AUC, Spearman with `target`."""
    positive = np.asarray(positive, dtype=bool)
    predicted = np.asarray(probability) >= 0.5
    classes = {}
    for name, truth, guess in (("positive", positive, predicted), ("negative", ~positive, ~predicted)):
        tp = int((truth & guess).sum())
        precision = tp / int(guess.sum()) if guess.any() else None
        recall = tp / int(truth.sum()) if truth.any() else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall > 0 else 0.0)
        classes[name] = {"rows": int(truth.sum()), "precision": precision, "recall": recall, "f1": f1}
    spearman = None
    if target is not None:
        rho = metrics.spearman(target, probability)
        spearman = None if math.isnan(rho) else rho
    return {"rows": len(positive), "classes": classes,
            "accuracy": float((positive == predicted).mean()) if len(positive) else None,
            "macro_f1": float(np.mean([c["f1"] for c in classes.values()])),
            "roc_auc": roc_auc(positive, np.asarray(probability)), "spearman": spearman}


# -- sampling ---------------------------------------------------------------------------------------


def _smallest_keys(batches: Iterable[pa.RecordBatch], limit: int, seed: int, stream: str,
                   seen: list[int] | None = None) -> pa.Table | None:
    """The `limit` rows with the smallest seeded hash of doc_id, streaming (at most ~2 x limit held);
    `seen` (a one-item list) counts every row read."""
    held: pa.Table | None = None
    keys = np.empty(0)
    for batch in batches:
        if seen is not None:
            seen[0] += batch.num_rows
        if not batch.num_rows:
            continue
        batch_keys = uniform_noise(batch.column("doc_id").to_pylist(), seed, stream)
        table = pa.Table.from_batches([batch])
        held = table if held is None else pa.concat_tables([held, table])
        keys = np.concatenate([keys, batch_keys])
        if held.num_rows > 2 * limit:
            keep = np.sort(np.argsort(keys, kind="stable")[:limit])
            held, keys = held.take(keep), keys[keep]
    if held is None:
        return None
    keep = np.sort(np.argsort(keys, kind="stable")[:limit])
    return held.take(keep).combine_chunks()


def _predicate(sql: str | None, label: str) -> str:
    if not sql:
        return "TRUE"
    return "(" + single_statement(sql, "SELECT 1 WHERE ({})", label=label, error=ClassifierError) + ")"


def _query(con, sql: str, name: str) -> Iterator[pa.RecordBatch]:
    try:
        reader = con.sql(sql).to_arrow_reader(READ_ROWS)
    except duckdb.Error as exc:
        raise ClassifierError(f"classifier {name!r}: {exc}\n  query: {sql}") from None
    yield from reader


def judge_sample(run: RunDir, config: ClassifierConfig, seed: int) -> tuple[pa.Table, int]:
    """(doc_id, text, target) of the seeded sample of judged rows, and how many judged rows there were."""
    target = single_statement(config.target or "", "SELECT {} AS t", label="target", error=ClassifierError)
    sql = (f"SELECT doc_id, left(text, {config.max_chars}) AS text, CAST(({target}) AS DOUBLE) AS target "
           f'FROM "{config.table}_scored" WHERE ({target}) IS NOT NULL AND isfinite(CAST(({target}) AS DOUBLE)) '
           f"AND {_predicate(config.where, 'where')}")
    available = [0]
    with open_catalog(run) as con:
        table = _smallest_keys(_query(con, sql, config.name), config.sample, seed, f"classifier-sample/{config.name}",
                               available)
    if table is None:
        raise ClassifierError(f"classifier {config.name!r}: no row of {config.table} has {config.target}: "
                              "run the judge first")
    return table, available[0]


def _reference_batches(config: ClassifierConfig) -> Iterator[pa.RecordBatch]:
    ingest = IngestConfig()
    for spec in config.reference:
        for shard in discover_shards(spec):
            for read in read_shard(shard, spec, ingest):
                records = read.records
                if records.num_rows:
                    yield pa.record_batch([records.column("doc_id"),
                                           records.column("text").cast(pa.large_string())], names=["doc_id", "text"])


def reference_sample(run: RunDir, config: ClassifierConfig, seed: int) -> tuple[pa.Table, pa.Table, dict]:
    """(positives, negatives) as (doc_id, text) tables, and where they came from."""
    half = config.sample // 2
    stream = f"classifier-sample/{config.name}"
    where = _predicate(config.where, "where")
    positive_sql = _predicate(config.positive_where, "positive_where")
    view = f'"{config.table}_scored"'
    text = f"left(text, {config.max_chars})::VARCHAR AS text"
    parts, counts = [], {"reference_rows": 0, "run_positive_rows": 0}
    if config.reference:
        batches = list(_reference_batches(config))
        counts["reference_rows"] = sum(b.num_rows for b in batches)
        parts.append(_smallest_keys(batches, half, seed, stream))
    with open_catalog(run) as con:
        if config.positive_where:
            sql = f"SELECT doc_id, {text} FROM {view} WHERE {positive_sql} AND {where}"
            seen = [0]
            parts.append(_smallest_keys(_query(con, sql, config.name), half, seed, stream, seen))
            counts["run_positive_rows"] = seen[0]
        parts = [p.cast(pa.schema([("doc_id", pa.string()), ("text", pa.large_string())])) for p in parts if p]
        if not parts:
            raise ClassifierError(f"classifier {config.name!r}: no positive rows (reference files empty, "
                                  "positive_where matched nothing)")
        positives = _smallest_keys(pa.concat_tables(parts).to_batches(), half, seed, stream)
        negative_filter = f"NOT coalesce({positive_sql}, FALSE) AND " if config.positive_where else ""
        sql = (f"SELECT doc_id, {text} FROM {view} WHERE {negative_filter}"
               f"{_predicate(config.negative_where, 'negative_where')} AND {where}")
        seen = [0]
        negatives = _smallest_keys(_query(con, sql, config.name), positives.num_rows, seed, f"{stream}/negative",
                                   seen)
        counts["pool_rows"] = seen[0]
    if negatives is None:
        raise ClassifierError(f"classifier {config.name!r}: the run has no negative rows")
    positive_ids = set(positives.column("doc_id").to_pylist())
    clash = np.array([d in positive_ids for d in negatives.column("doc_id").to_pylist()])
    negatives = negatives.filter(pa.array(~clash))  # a reference file also ingested into the run
    return positives, negatives.cast(positives.schema), counts


# -- training ---------------------------------------------------------------------------------------


def fit_fasttext(texts: list[str], positive: np.ndarray, config: ClassifierConfig, seed: int, workdir: Path):
    """A floret (fastText mode) supervised model of `positive` given `texts`, rows in a seeded order."""
    import floret

    lines = training_lines(texts, positive.tolist(), lowercase=config.lowercase, max_chars=config.max_chars)
    path = workdir / "train.txt"
    path.write_text("".join(lines), encoding="utf-8")
    ft = config.fasttext
    return floret.train_supervised(input=str(path), mode="fasttext", dim=ft.dim, epoch=ft.epoch, lr=ft.lr,
                                   wordNgrams=ft.word_ngrams, minCount=ft.min_count, bucket=ft.bucket,
                                   thread=ft.thread, seed=seed, verbose=0)


def train(run: RunDir, config: ClassifierConfig) -> dict:
    """Sample, label, train, evaluate and save a classifier; returns its metadata (model.json)."""
    seed = resolve_seed(run, config.seed)
    started = time.perf_counter()
    target = None
    if config.source == "judge":
        table, available = judge_sample(run, config, seed)
        ids, texts = table.column("doc_id").to_pylist(), table.column("text").to_pylist()
        target = table.column("target").to_numpy(zero_copy_only=False)
        counts = {"judged_rows": available}
    else:
        positives, negatives, counts = reference_sample(run, config, seed)
        ids = positives.column("doc_id").to_pylist() + negatives.column("doc_id").to_pylist()
        texts = positives.column("text").to_pylist() + negatives.column("text").to_pylist()
        labels = np.r_[np.ones(positives.num_rows, dtype=bool), np.zeros(negatives.num_rows, dtype=bool)]
    heldout = uniform_noise(ids, seed, f"classifier-holdout/{config.name}") < config.holdout_fraction
    train_rows = ~heldout
    if heldout.sum() < 2 or train_rows.sum() < 10:
        raise ClassifierError(f"classifier {config.name!r}: {len(ids)} labelled rows are too few to train and "
                              f"hold out {config.holdout_fraction:.0%}")
    threshold = None
    if target is not None:
        threshold = (config.positive_threshold if config.positive_threshold is not None
                     else float(np.median(target[train_rows])))
        labels = target >= threshold
    if labels[train_rows].all() or not labels[train_rows].any():
        raise ClassifierError(f"classifier {config.name!r}: every training row has the same label"
                              + (f" (target >= {threshold:g})" if threshold is not None else ""))
    order = np.argsort(uniform_noise(ids, seed, f"classifier-order/{config.name}"), kind="stable")
    order = order[train_rows[order]]
    directory = model_root(run, config.name)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".train-") as workdir:
        model = fit_fasttext([texts[i] for i in order], labels[order], config, seed, Path(workdir))
        train_seconds = time.perf_counter() - started
        probability = positive_probability(
            model, prediction_lines(pa.array(texts, pa.large_string()), lowercase=config.lowercase,
                                    max_chars=config.max_chars))
        split_metrics = {split: classification_metrics(labels[rows], probability[rows],
                                                       None if target is None else target[rows])
                         for split, rows in (("train", train_rows), ("heldout", heldout))}
        metadata = {
            "name": config.name, "source": config.source, "table": config.table, "target": config.target,
            "positive_threshold": threshold, "where": config.where, "positive_where": config.positive_where,
            "negative_where": config.negative_where,
            "reference": [spec.model_dump(mode="json") for spec in config.reference],
            "seed": seed, "config": config.model_dump(mode="json"),
            "text": {"lowercase": config.lowercase, "max_chars": config.max_chars},
            "fasttext": config.fasttext.model_dump(mode="json"),
            "rows": {"labelled": len(ids), "train": int(train_rows.sum()), "heldout": int(heldout.sum()),
                     "positive_train": int(labels[train_rows].sum()),
                     "negative_train": int((~labels[train_rows]).sum()),
                     **counts},
            "positive_share": float(labels[train_rows].mean()),
            "metrics": split_metrics,
            "train_seconds": round(train_seconds, 3),
            "floret_version": importlib.metadata.version("floret"),
            "thresher_version": __version__,
        }
        model_dir, model_hash = save_model(directory, model, metadata)
    _write_report(run, config, metadata, model_hash, ids, heldout, labels, target, probability)
    result = {**metadata, "model_hash": model_hash, "model_dir": str(model_dir),
              "seconds": round(time.perf_counter() - started, 3)}
    (run.root / "classifier" / "reports" / f"{config.name}.md").write_text(markdown(result), encoding="utf-8")
    return result


def _write_report(run: RunDir, config: ClassifierConfig, metadata: dict, model_hash: str, ids: list[str],
                  heldout: np.ndarray, labels: np.ndarray, target: np.ndarray | None, probability: np.ndarray) -> None:
    rows = []
    for split, m in metadata["metrics"].items():
        common = {"name": config.name, "source": config.source, "split": split, "model_hash": model_hash}
        for cls, c in m["classes"].items():
            rows.append({**common, "class": cls, "rows": c["rows"], "precision": c["precision"],
                         "recall": c["recall"], "f1": c["f1"]})
        rows.append({**common, "class": "all", "rows": m["rows"], "f1": m["macro_f1"], "accuracy": m["accuracy"],
                     "roc_auc": m["roc_auc"], "spearman": m["spearman"]})
    out = run.root / "classifier"
    with AtomicParquetWriter(out / "reports" / f"{config.name}.parquet", REPORT_SCHEMA) as writer:
        writer.write(pa.RecordBatch.from_pylist(rows, schema=REPORT_SCHEMA))
    with AtomicParquetWriter(out / "predictions" / f"{config.name}.parquet", PREDICTIONS_SCHEMA) as writer:
        writer.write(pa.record_batch([
            pa.array([config.name] * len(ids), pa.string()), pa.array(ids, pa.string()),
            pa.array(np.where(heldout, "heldout", "train"), pa.string()), pa.array(labels, pa.bool_()),
            pa.array(target, pa.float64()) if target is not None else pa.nulls(len(ids), pa.float64()),
            pa.array(probability, pa.float64())], schema=PREDICTIONS_SCHEMA))


def markdown(result: dict) -> str:
    """The classifier's report (also a Prefect artifact)."""
    def cell(value) -> str:
        return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else f"{value:,}")

    rows = result["rows"]
    if result["source"] == "judge":
        labels = (f"labels from `{result['target']}` ≥ {result['positive_threshold']:g} on {rows['labelled']:,} "
                  f"sampled of {rows['judged_rows']:,} judged rows")
    else:
        sources = [f"{rows['reference_rows']:,} reference rows"] if result["reference"] else []
        sources += [f"{rows['run_positive_rows']:,} run rows matching `{result['positive_where']}`"
                    if result["positive_where"] else ""]
        labels = (f"positives from {' and '.join(s for s in sources if s)}; negatives from a pool of "
                  f"{rows['pool_rows']:,} run rows")
    lines = [f"# fastText classifier `{result['name']}` → `classifier_{result['name']}_score`", "",
             f"model `{result['model_hash']}` (floret {result['floret_version']}, dim {result['fasttext']['dim']}, "
             f"{result['fasttext']['epoch']} epochs, word n-grams {result['fasttext']['word_ngrams']}); {labels}; "
             f"{rows['train']:,} training rows ({rows['positive_train']:,} positive, "
             f"{rows['negative_train']:,} negative) and {rows['heldout']:,} held out (seed {result['seed']}); "
             f"trained in {result['train_seconds']:.1f} s", "",
             "| split | class | rows | precision | recall | F1 | accuracy | ROC AUC | Spearman |",
             "|---|---|---|---|---|---|---|---|---|"]
    for split, m in result["metrics"].items():
        for cls, c in m["classes"].items():
            lines.append(f"| {split} | {cls} | {cell(c['rows'])} | {cell(c['precision'])} | {cell(c['recall'])} | "
                         f"{cell(c['f1'])} | | | |")
        lines.append(f"| {split} | all (macro F1) | {cell(m['rows'])} | | | {cell(m['macro_f1'])} | "
                     f"{cell(m['accuracy'])} | {cell(m['roc_auc'])} | {cell(m['spearman'])} |")
    return "\n".join(lines) + "\n"

