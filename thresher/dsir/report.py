"""How well a selection matches its target: n-gram distributions and KL divergences.

For each target the report compares four bucket distributions: p_target and p_raw (from the fit),
p_selected (the documents the selection chose for that target) and p_random (a uniform random
selection of the same size from the same candidates, the baseline). DSIR's claim is that
KL(target || selected) is well below KL(target || random); the report measures it.

Every KL divergence here is KL(p || q) = sum_b p_b log(p_b / q_b) in nats. An empirical q (the
n-gram counts c_b of N features of some documents) is smoothed with the Krichevsky-Trofimov
estimator q_b = (c_b + 1/2) / (N + B/2), so an empty bucket costs a finite amount (p_raw too is
estimated so, from the fit's raw counts). A finite sample looks farther from the target than its
documents are (empty and noisy buckets), so:

- selected and random are compared at the same N (the larger is cut to the smaller's features);
- `kl_floor` is the KL of a multinomial sample of N features drawn from p_target itself, smoothed
  the same way: what a perfect selection of this size would score. A selection near the floor
  matches the target as well as its size allows.

Selections larger than `max_docs` are featurised on a seeded uniform subsample of `max_docs`
documents (said in the report).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.dsir.features import HashedNgramFeaturizer
from thresher.dsir.fit import FittedDsir
from thresher.dsir.resample import baseline_path, selection_dir, uniform_noise
from thresher.storage.run_dir import RunDir

KL_EPSILON = 1e-8
KT_ALPHA = 0.5
TOP_BUCKETS = 15
EXAMPLE_DOCS = 300  # documents scanned for example n-grams of the top buckets


def normalize(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def kl_divergence(p: np.ndarray, q: np.ndarray, epsilon: float = KL_EPSILON) -> float:
    """KL(p || q) in nats for two distributions over the same buckets (q floored by epsilon)."""
    p = np.asarray(p, dtype=np.float64)
    q = (np.asarray(q, dtype=np.float64) + epsilon) / (1.0 + epsilon * len(q))
    support = p > 0
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))


def smoothed(counts: np.ndarray, alpha: float = KT_ALPHA) -> np.ndarray:
    """Add-alpha estimate of a distribution from bucket counts (alpha = 1/2: Krichevsky-Trofimov)."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + alpha) / (counts.sum() + alpha * len(counts))


def kl_to_counts(p: np.ndarray, counts: np.ndarray) -> float:
    """KL(p || smoothed(counts)): how far an empirical sample is from p."""
    return kl_divergence(p, smoothed(counts), epsilon=0.0)


def kl_floor(p: np.ndarray, features: int, seed: int) -> float:
    """KL(p || a sample of `features` n-grams drawn from p itself): the best a sample that size scores."""
    rng = np.random.default_rng(seed)
    return kl_to_counts(p, rng.multinomial(features, p / p.sum()))


def _texts_of(run: RunDir, doc_ids: list[str], batch_rows: int = 1024) -> Iterator[list[str | None]]:
    """The texts of `doc_ids` in the order given, streamed from the run's documents/instructions
    (the order matters where a distribution is cut at a number of features)."""
    parts = [str(path) for _, _, path in run.data_parts()]
    if not parts or not doc_ids:
        return
    con = duckdb.connect()
    try:
        con.register("wanted", pa.table({"doc_id": pa.array(doc_ids, pa.string()),
                                         "position": pa.array(range(len(doc_ids)), pa.int64())}))
        reader = con.sql(
            "SELECT d.text FROM read_parquet($parts, union_by_name = true) d JOIN wanted w USING (doc_id) "
            "ORDER BY w.position",
            params={"parts": parts},
        ).to_arrow_reader(batch_rows)
        for batch in reader:
            yield batch.column(0).to_pylist()
    finally:
        con.close()


def subsample(doc_ids: list[str], max_docs: int, seed: int) -> list[str]:
    """At most `max_docs` of `doc_ids`, a seeded uniform subsample (all of them when fewer)."""
    if len(doc_ids) <= max_docs:
        return doc_ids
    noise = uniform_noise(doc_ids, seed, "report")
    return [doc_ids[i] for i in np.argsort(noise, kind="stable")[:max_docs]]


def docs_distribution(
    run: RunDir,
    doc_ids: list[str],
    featurizer: HashedNgramFeaturizer,
    *,
    max_features: int | None = None,
    examples_for: set[int] | None = None,
) -> tuple[np.ndarray, dict[int, Counter]]:
    """Bucket counts of the given documents, cut at exactly `max_features` features (None: all),
    and, for the `examples_for` buckets, the n-grams seen there."""
    counts = np.zeros(featurizer.num_buckets, dtype=np.int64)
    examples: dict[int, Counter] = {b: Counter() for b in examples_for or ()}
    scanned = total = 0
    for texts in _texts_of(run, doc_ids):
        ids = featurizer.featurize(texts).in_document_order()
        if max_features is not None and total + len(ids) >= max_features:
            counts += np.bincount(ids[: max_features - total], minlength=featurizer.num_buckets)
            break
        counts += np.bincount(ids, minlength=featurizer.num_buckets)
        total += len(ids)
        for text in texts:
            if not examples or scanned >= EXAMPLE_DOCS or not text:
                break
            scanned += 1
            for ngram, bucket in zip(featurizer.ngram_strings(text), featurizer.featurize([text]).ids.tolist()):
                if bucket in examples:
                    examples[bucket][ngram] += 1
    return counts, examples


def selection_report(run: RunDir, fitted: FittedDsir, selection_meta: dict, *, max_docs: int = 20_000) -> dict:
    """The report of a written selection (see the module docstring).

    KL(target || selected) and KL(target || random) are compared at the same sample size: an
    empirical distribution of fewer n-grams leaves more buckets empty and so looks farther from
    the target whatever its documents are, so the larger of the two is cut to the smaller one's
    number of n-gram features (`features_compared`). KL(target || raw) uses the fit's raw counts.
    """
    name, seed = selection_meta["name"], selection_meta["seed"]
    featurizer = fitted.featurizer
    selected = pq.read_table(selection_dir(run, name) / "selected.parquet", columns=["doc_id", "target"])
    baseline_file = baseline_path(run, name)
    baseline = pq.read_table(baseline_file, columns=["doc_id", "target"]) if baseline_file.is_file() else None
    targets = []
    for index, target in enumerate(fitted.targets):
        p_target, p_raw = fitted.target_probs[index], fitted.raw_probs
        top = [int(b) for b in np.argsort(-p_target, kind="stable")[:TOP_BUCKETS]]
        ids = _ids_for(selected, target)
        sample = subsample(ids, max_docs, seed)
        sel_counts, examples = docs_distribution(run, sample, featurizer, examples_for=set(top))
        p_selected = normalize(sel_counts)
        entry = {
            "target": target,
            "selected_docs": len(ids),
            "featurized_docs": len(sample),
            "kl_target_raw": round(kl_to_counts(p_target, fitted.raw_counts), 4),
            "kl_target_selected": round(kl_to_counts(p_target, sel_counts), 4) if sel_counts.sum() else None,
            "kl_target_random": None,
            "kl_floor": round(kl_floor(p_target, int(sel_counts.sum()), seed), 4) if sel_counts.sum() else None,
            "features_compared": int(sel_counts.sum()),
            "kl_reduction_vs_random": None,
        }
        p_random = None
        random_sample = subsample(_ids_for(baseline, target), max_docs, seed) if baseline is not None else []
        if random_sample and sel_counts.sum():
            random_counts = docs_distribution(run, random_sample, featurizer)[0]
            compared = int(min(sel_counts.sum(), random_counts.sum()))
            if random_counts.sum() > compared:
                random_counts = docs_distribution(run, random_sample, featurizer, max_features=compared)[0]
            elif sel_counts.sum() > compared:
                sel_counts = docs_distribution(run, sample, featurizer, max_features=compared)[0]
            p_random = normalize(random_counts)
            kl_selected = kl_to_counts(p_target, sel_counts)
            kl_random = kl_to_counts(p_target, random_counts)
            entry.update(
                features_compared=compared,
                kl_floor=round(kl_floor(p_target, compared, seed), 4),
                kl_target_selected=round(kl_selected, 4),
                kl_target_random=round(kl_random, 4),
                kl_reduction_vs_random=round(1 - kl_selected / kl_random, 4) if kl_random > 0 else None,
            )
        entry["top_buckets"] = [
            {
                "bucket": b,
                "p_target": float(p_target[b]),
                "p_raw": float(p_raw[b]),
                "p_selected": float(p_selected[b]) if len(sample) else None,
                "p_random": float(p_random[b]) if p_random is not None else None,
                "examples": [g for g, _ in examples.get(b, Counter()).most_common(3)],
            }
            for b in top
        ]
        targets.append(entry)
    return {"selection": name, "fit_hash": fitted.fit_hash, "seed": seed, "max_docs": max_docs,
            "targets": targets}


def _ids_for(table: pa.Table, target: str) -> list[str]:
    mask = np.asarray(table.column("target").to_numpy(zero_copy_only=False) == target)
    return [d for d, m in zip(table.column("doc_id").to_pylist(), mask) if m]


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def to_markdown(report: dict, selection_meta: dict | None = None) -> str:
    lines = [f"# DSIR selection `{report['selection']}`", "",
             f"fit `{report['fit_hash']}`, seed {report['seed']}; KL in nats (lower = closer to the target); "
             "selected and random compared at the same number of n-gram features", "",
             "| target | selected | KL(target‖raw) | KL(target‖random) | KL(target‖selected) | reduction vs random "
             "| floor (perfect sample) | n-grams compared |",
             "|---|---|---|---|---|---|---|---|"]
    for t in report["targets"]:
        reduction = t["kl_reduction_vs_random"]
        lines.append(
            f"| {t['target']} | {t['selected_docs']:,} | {_fmt(t['kl_target_raw'])} | {_fmt(t['kl_target_random'])} "
            f"| {_fmt(t['kl_target_selected'])} | {'-' if reduction is None else f'{reduction:.1%}'} "
            f"| {_fmt(t['kl_floor'])} | {t['features_compared']:,} |")
    if selection_meta:
        lines += ["", "| target | quota | candidates | selected | log-weight range (log10) | ESS |",
                  "|---|---|---|---|---|---|"]
        for t in selection_meta["targets"]:
            lw = t["log_weights"]
            span = lw.get("log10_weight_range")
            lines.append(f"| {t['target']} | {t['quota']:,} | {t['candidates']:,} | {t['selected']:,} | "
                         f"{'-' if span is None else f'{span[0]} .. {span[1]}'} | "
                         f"{_fmt(lw.get('effective_sample_size'), 2)} |")
    for t in report["targets"]:
        lines += ["", f"## Top {len(t['top_buckets'])} buckets of target `{t['target']}`", "",
                  "| bucket | p_target | p_raw | p_selected | p_random | n-grams seen there |",
                  "|---|---|---|---|---|---|"]
        for b in t["top_buckets"]:
            examples = ", ".join(f"`{g}`" for g in b["examples"]) or "-"
            lines.append(f"| {b['bucket']} | {_fmt(b['p_target'])} | {_fmt(b['p_raw'])} | {_fmt(b['p_selected'])} "
                         f"| {_fmt(b['p_random'])} | {examples} |")
        if t["featurized_docs"] < t["selected_docs"]:
            lines.append(f"\np_selected from a uniform subsample of {t['featurized_docs']:,} documents.")
    return "\n".join(lines) + "\n"


def kl_summary_rows(report: dict) -> list[dict]:
    return [{k: t[k] for k in ("target", "selected_docs", "kl_target_raw", "kl_target_random", "kl_target_selected",
                               "kl_reduction_vs_random", "kl_floor", "features_compared")} for t in report["targets"]]



