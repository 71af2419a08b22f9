"""Diversity selection over a run's embeddings: DEITA's score-first rule, or k-center.

DEITA (Liu et al. 2024, "What makes good data for alignment"): rank the candidates by a score
(DEITA: complexity x quality, both judged by an SLM; here any SQL expression over the catalog),
walk down the ranking and keep a row only if its cosine similarity to every row kept so far is at
most `threshold` (0.9 by default), until `k` rows are kept. The kept set is an index
(thresher.embeddings.index: exact, or IVF on disk when it may outgrow memory).

k-center (greedy farthest point, Gonzalez 1985): the first centre is the best-ranked candidate;
each next one is the candidate least similar to every centre chosen so far. The k centres cover
the candidates (every candidate is within the k-th pick's distance of a centre, a 2-approximation
of the optimal covering radius): "the k most representative rows". It passes over the candidates
once per pick, reading them from a memory-mapped float32 file (candidates x dimension x 4 bytes on
disk; the similarity to the nearest centre, 4 bytes per candidate, in memory).

Streaming: candidates come out of the run's read-only catalog (`<table>_scored`, which holds
the embedding columns) as Arrow batches, ordered by score (descending, nulls last) then doc_id,
so the order and with it the selection is a pure function of the run, the selection settings and
the seed (which only the IVF training sample depends on); the seed is recorded.

Output (the catalog shows it as `selections_<name>`):

    selections/<name>/selected.parquet   doc_id, rank (order of choice), score, nearest_similarity
                                         (to the closest row chosen before it; null for the first)
    selections/<name>/selection.json     settings, seed, counts, index, similarity histograms, and
                                         the report: mean pairwise similarity of the selection vs a
                                         same-size seeded random sample of the candidates
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher import __version__
from thresher.dsir.resample import uniform_noise
from thresher.embeddings.apply import embedding_parts, seeded_sample
from thresher.embeddings.config import DiversitySelection
from thresher.embeddings.index import IvfKeptIndex, KeptIndex
from thresher.embeddings.scorer import EmbeddingScorer, arrow_to_vectors
from thresher.embeddings.semdedup import resolve_seed, similarity_histogram
from thresher.scorers.base import scorer_key, scorer_params_hash
from thresher.storage.catalog import open_catalog
from thresher.storage.parquet_io import AtomicParquetWriter, write_json_atomic
from thresher.storage.run_dir import RunDir
from thresher.storage.sql import quote_ident, single_statement

SELECTED_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("rank", pa.int64(), nullable=False),
    pa.field("score", pa.float64()),
    pa.field("nearest_similarity", pa.float32()),
], metadata={"thresher.table": "selection"})


class DiversityError(ValueError):
    """A selection that cannot run; the message says why."""


def selection_dir(run: RunDir, name: str) -> Path:
    return run.root / "selections" / name


def work_dir(run: RunDir, name: str) -> Path:
    return run.root / ".diversity-work" / name



def candidate_query(selection: DiversitySelection, vector_column: str, *, ordered: bool = True,
                    with_vectors: bool = True) -> str:
    """SQL yielding (doc_id, score, vector) of the candidates, best first."""
    view = f"{selection.table}_scored"
    score = (single_statement(selection.score_sql, "SELECT {} AS s", label="score_sql", error=DiversityError)
             if selection.score_sql else "NULL")
    columns = f"doc_id, CAST(({score}) AS DOUBLE) AS score" + (f", {quote_ident(vector_column)} AS vector"
                                                                 if with_vectors else "")
    sql = f"SELECT {columns} FROM {quote_ident(view)} WHERE {quote_ident(vector_column)} IS NOT NULL"
    if selection.where:
        sql += f" AND ({single_statement(selection.where, 'SELECT 1 WHERE ({})', label='where', error=DiversityError)})"
    if ordered:
        sql += " ORDER BY score DESC NULLS LAST, doc_id"
    return sql


def _stream(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        reader = con.sql(sql).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise DiversityError(f"candidate query failed: {exc}\n  query: {sql}") from None
    yield from reader


def _batch_arrays(batch: pa.RecordBatch) -> tuple[list[str], np.ndarray, np.ndarray]:
    doc_ids = batch.column(0).to_pylist()
    scores = batch.column(1).to_numpy(zero_copy_only=False).astype(np.float64)  # null -> nan
    vectors, _ = arrow_to_vectors(batch.column(2))
    return doc_ids, scores, vectors


class _Selected:
    """Streams the chosen rows to selected.parquet and keeps their doc_ids for the report."""

    def __init__(self, path: Path):
        self.writer = AtomicParquetWriter(path, SELECTED_SCHEMA)
        self.doc_ids: list[str] = []
        self.nearest: list[float] = []

    def add(self, doc_ids: list[str], scores: np.ndarray, nearest: np.ndarray) -> None:
        if not doc_ids:
            return
        rank0 = len(self.doc_ids)
        nearest = np.asarray(nearest, dtype=np.float32)
        self.writer.write(pa.record_batch([
            pa.array(doc_ids, pa.string()), pa.array(np.arange(rank0 + 1, rank0 + 1 + len(doc_ids)), pa.int64()),
            pa.array(scores, pa.float64(), mask=np.isnan(scores)),
            pa.array(nearest, pa.float32(), mask=~np.isfinite(nearest))], schema=SELECTED_SCHEMA))
        self.doc_ids += doc_ids
        self.nearest += nearest.tolist()


# -- DEITA ----------------------------------------------------------------------------------------


def _build_index(run: RunDir, selection: DiversitySelection, scorer: EmbeddingScorer, candidates: int,
                 seed: int) -> KeptIndex:
    kind = selection.index
    if kind == "auto":
        kind = "flat" if candidates <= selection.flat_max_rows else "ivf"
    if kind == "flat":
        return KeptIndex(scorer.dimension)
    lists = selection.ivf_lists or max(1, int(4 * np.sqrt(max(candidates, 1))))
    paths = [p for _, _, p in embedding_parts(run, scorer, selection.table)]
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    _, training = seeded_sample(paths, scorer.vector_column, max(39 * lists, 10_000), rows, seed, "diversity-ivf")
    return IvfKeptIndex(scorer.dimension, training, lists=lists, probe=selection.ivf_probe, seed=seed,
                        path=work_dir(run, selection.name) / "kept.ivf")


def greedy_batch(vectors: np.ndarray, prior: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """DEITA's rule within one batch (rows in rank order): which rows to keep, given each row's
    similarity to the rows kept in earlier batches (`prior`); and each row's similarity to the
    nearest row kept before it (earlier batches or earlier in this batch)."""
    n = len(vectors)
    nearest = prior.astype(np.float32).copy()
    keep = np.zeros(n, dtype=bool)
    open_rows = np.flatnonzero(prior <= threshold)
    if len(open_rows) == 0:
        return keep, nearest
    sub = vectors[open_rows]
    sims = sub @ sub.T
    best = np.full(len(open_rows), -np.inf, dtype=np.float32)  # similarity to rows kept in this batch
    at_decision = np.empty(len(open_rows), dtype=np.float32)
    for pos in range(len(open_rows)):
        at_decision[pos] = best[pos]
        if best[pos] <= threshold:
            keep[open_rows[pos]] = True
            np.maximum(best, sims[:, pos], out=best)
    nearest[open_rows] = np.maximum(nearest[open_rows], at_decision)
    return keep, nearest


def _deita(con, run: RunDir, selection: DiversitySelection, scorer: EmbeddingScorer, sql: str, candidates: int,
           seed: int, out: _Selected) -> dict:
    index = _build_index(run, selection, scorer, candidates, seed)
    examined, nearest_all = 0, []
    try:
        for batch in _stream(con, sql, selection.batch_rows):
            doc_ids, scores, vectors = _batch_arrays(batch)
            if selection.k is not None and len(out.doc_ids) >= selection.k:
                break
            keep, nearest = greedy_batch(vectors, index.nearest(vectors), selection.threshold)
            chosen = np.flatnonzero(keep)
            if selection.k is not None and len(chosen) > selection.k - len(out.doc_ids):
                # the k-th keep ends the walk: the rows after it were not examined
                chosen = chosen[: selection.k - len(out.doc_ids)]
                nearest = nearest[: int(chosen[-1]) + 1] if len(chosen) else nearest[:0]
            own = nearest[chosen]  # similarity to rows kept before it (never itself)
            out.add([doc_ids[i] for i in chosen], scores[chosen], own)
            index.add(vectors[chosen])
            examined += len(nearest)
            nearest_all.append(nearest)
        described = index.describe()
    finally:
        index.close()
    values = np.concatenate(nearest_all) if nearest_all else np.zeros(0, np.float32)
    return {"examined": examined, "index": described, "examined_nearest_histogram": similarity_histogram(values),
            "skipped_as_similar": int((values > selection.threshold).sum())}


# -- k-center ---------------------------------------------------------------------------------------


def _kcenter(con, run: RunDir, selection: DiversitySelection, scorer: EmbeddingScorer, sql: str, candidates: int,
             out: _Selected) -> dict:
    work = work_dir(run, selection.name)
    work.mkdir(parents=True, exist_ok=True)
    matrix_path = work / "candidates.f32"
    d = scorer.dimension
    matrix = np.lib.format.open_memmap(matrix_path, mode="w+", dtype=np.float32, shape=(max(candidates, 1), d))
    doc_ids: list[str] = []
    scores = np.full(candidates, np.nan)
    n = 0
    for batch in _stream(con, sql, selection.batch_rows):
        ids, s, v = _batch_arrays(batch)
        if n + len(ids) > candidates:
            raise DiversityError("the candidate set changed while it was read")
        matrix[n : n + len(ids)] = v
        scores[n : n + len(ids)] = s
        doc_ids += ids
        n += len(ids)
    matrix.flush()
    k = min(selection.k or n, n)
    nearest = np.full(n, -np.inf, dtype=np.float32)  # similarity to the nearest centre so far
    chunk = max(1, (64 << 20) // (4 * d))
    picks, picked_nearest = [], []
    for t in range(k):
        c = 0 if t == 0 else int(np.argmin(nearest))  # ties: the best-ranked candidate
        if t and nearest[c] >= 1.0 - 1e-6:
            break  # every candidate is a copy of a centre: nothing is left to cover
        picks.append(c)
        picked_nearest.append(float(nearest[c]))
        centre = np.array(matrix[c])
        for start in range(0, n, chunk):
            np.maximum(nearest[start : start + chunk], matrix[start : start + chunk] @ centre,
                       out=nearest[start : start + chunk])
    out.add([doc_ids[i] for i in picks], scores[picks], np.array(picked_nearest, dtype=np.float32))
    radius = max(0.0, float(1.0 - nearest.min())) if n else 0.0
    del matrix
    matrix_path.unlink(missing_ok=True)
    return {"examined": n, "index": {"kind": "memmap", "rows": n},
            "covering_radius": round(radius, 6),
            "candidate_nearest_centre_histogram": similarity_histogram(nearest)}


# -- report -----------------------------------------------------------------------------------------


def mean_pairwise_similarity(vectors: np.ndarray) -> tuple[float, float]:
    """(mean, max) cosine similarity over distinct pairs of rows."""
    n = len(vectors)
    if n < 2:
        return float("nan"), float("nan")
    sims = vectors @ vectors.T
    off = ~np.eye(n, dtype=bool)
    return float(sims[off].mean()), float(sims[off].max())


def _report(con, selection: DiversitySelection, vector_column: str, selected: list[str], seed: int,
            batch_rows: int) -> dict:
    """Mean pairwise similarity of (a seeded sample of) the selection vs a same-size seeded random
    sample of all candidates."""
    m = min(len(selected), selection.report_sample)
    if m < 2:
        return {"sample": m}
    noise = uniform_noise(selected, seed, "diversity-report-selected")
    want = {selected[i] for i in np.argsort(noise, kind="stable")[:m].tolist()}
    chosen_vectors, pool_ids, pool_noise, pool_vectors = [], [], [], []
    sql = candidate_query(selection, vector_column, ordered=False)
    for batch in _stream(con, sql, batch_rows):
        ids, _, vectors = _batch_arrays(batch)
        hit = np.fromiter((d in want for d in ids), dtype=bool, count=len(ids))
        chosen_vectors.append(vectors[hit])
        if selection.random_baseline:
            u = uniform_noise(ids, seed, "diversity-report-random")
            pool_ids += ids
            pool_noise.append(u)
            pool_vectors.append(vectors)
            if len(pool_ids) > 4 * m:  # keep the m smallest keys only
                u_all = np.concatenate(pool_noise)
                keep = np.argsort(u_all, kind="stable")[:m]
                pool_ids = [pool_ids[i] for i in keep]
                pool_noise, pool_vectors = [u_all[keep]], [np.concatenate(pool_vectors)[keep]]
    kept = np.concatenate(chosen_vectors)
    kept_mean, kept_max = mean_pairwise_similarity(kept)
    report = {"sample": m, "selected_mean_pairwise_similarity": round(kept_mean, 6),
              "selected_max_pairwise_similarity": round(kept_max, 6),
              "selected_pairs_above_threshold": int(((kept @ kept.T) > selection.threshold).sum() - len(kept)) // 2}
    if selection.random_baseline and pool_ids:
        u_all = np.concatenate(pool_noise)
        keep = np.argsort(u_all, kind="stable")[:m]
        random_mean, random_max = mean_pairwise_similarity(np.concatenate(pool_vectors)[keep])
        report["random_mean_pairwise_similarity"] = round(random_mean, 6)
        report["random_max_pairwise_similarity"] = round(random_max, 6)
    return report


# -- entry point ------------------------------------------------------------------------------------


def select_diverse(run: RunDir, scorer: EmbeddingScorer, selection: DiversitySelection) -> dict:
    """Run one diversity selection; write selections/<name>/; return its metadata."""
    embedding_parts(run, scorer, selection.table)  # fails early: no embeddings, or of other settings
    seed = resolve_seed(run, selection.seed)
    started = time.perf_counter()
    out_dir = selection_dir(run, selection.name)
    shutil.rmtree(work_dir(run, selection.name), ignore_errors=True)
    with open_catalog(run) as con:
        views = {row[0] for row in con.execute("SELECT name FROM thresher_views").fetchall()}
        view = f"{selection.table}_scored"
        if view not in views:
            raise DiversityError(f"run {run.root} has no {view!r} view: ingest and embed it first")
        columns = {row[0] for row in con.execute(f"DESCRIBE {quote_ident(view)}").fetchall()}
        if scorer.vector_column not in columns:
            raise DiversityError(f"{view} has no {scorer.vector_column}: rebuild the catalog after embedding")
        sql = candidate_query(selection, scorer.vector_column)
        count_sql = candidate_query(selection, scorer.vector_column, ordered=False, with_vectors=False)
        try:
            candidates = con.execute(f"SELECT count(*) FROM ({count_sql})").fetchall()[0][0]
        except duckdb.Error as exc:
            raise DiversityError(f"selection {selection.name!r}: {exc}") from None
        selected = _Selected(out_dir / "selected.parquet")
        try:
            if selection.method == "deita":
                details = _deita(con, run, selection, scorer, sql, candidates, seed, selected)
            else:
                details = _kcenter(con, run, selection, scorer, sql, candidates, selected)
        except BaseException:
            selected.writer.abort()
            raise
        selected.writer.close()
        report = _report(con, selection, scorer.vector_column, selected.doc_ids, seed, selection.batch_rows)
    shutil.rmtree(work_dir(run, selection.name), ignore_errors=True)
    nearest = np.array(selected.nearest, dtype=np.float32)
    meta = {
        "name": selection.name,
        "kind": "diversity",
        "method": selection.method,
        "table": selection.table,
        "seed": seed,
        "threshold": selection.threshold if selection.method == "deita" else None,
        "k": selection.k,
        "candidates": int(candidates),
        "selected_rows": len(selected.doc_ids),
        "embeddings": scorer_key(scorer),
        "embedding_params_hash": scorer_params_hash(scorer),
        "selection": selection.model_dump(mode="json"),
        "selection_hash": selection.content_hash(),
        **details,
        "selected_nearest_histogram": similarity_histogram(nearest[np.isfinite(nearest)]),
        "report": report,
        "seconds": round(time.perf_counter() - started, 3),
        "thresher_version": __version__,
    }
    write_json_atomic(out_dir / "selection.json", meta)
    return meta


def read_selection(run: RunDir, name: str) -> tuple[dict, pa.Table]:
    directory = selection_dir(run, name)
    if not (directory / "selection.json").is_file():
        raise DiversityError(f"{run.root} has no selection {name!r}")
    return (json.loads((directory / "selection.json").read_text(encoding="utf-8")),
            pq.read_table(directory / "selected.parquet"))


def markdown(meta: dict) -> str:
    """The selection's report as Markdown (a Prefect artifact)."""
    report = meta.get("report", {})
    lines = [f"# Diversity selection `{meta['name']}` ({meta['method']})", "",
             f"table `{meta['table']}`, embeddings `{meta['embeddings']}`, seed {meta['seed']}"
             + (f", threshold {meta['threshold']}" if meta.get("threshold") is not None else "")
             + (f", k {meta['k']}" if meta.get("k") else ""), "",
             "| candidates | examined | selected | index |", "|---|---|---|---|",
             f"| {meta['candidates']:,} | {meta['examined']:,} | {meta['selected_rows']:,} | {meta['index']['kind']} |",
             ""]
    if "selected_mean_pairwise_similarity" in report:
        lines += ["| sample | mean pairwise sim. (selected) | (random) | max (selected) | pairs > threshold |",
                  "|---|---|---|---|---|",
                  f"| {report['sample']} | {report['selected_mean_pairwise_similarity']:.4f} | "
                  f"{report.get('random_mean_pairwise_similarity', float('nan')):.4f} | "
                  f"{report['selected_max_pairwise_similarity']:.4f} | {report['selected_pairs_above_threshold']} |",
                  ""]
    for key, title in (("examined_nearest_histogram", "similarity of each examined candidate to the nearest kept row"),
                       ("candidate_nearest_centre_histogram", "similarity of each candidate to its nearest centre"),
                       ("selected_nearest_histogram", "similarity of each selected row to the nearest earlier pick")):
        histogram = meta.get(key)
        if not histogram:
            continue
        total = sum(histogram.values()) or 1
        lines += [f"## {title}", "", "| similarity | rows | |", "|---|---|---|"]
        lines += [f"| {b} | {n:,} | {'█' * max(1, round(40 * n / total))} |" for b, n in histogram.items() if n]
        lines.append("")
    return "\n".join(lines)
