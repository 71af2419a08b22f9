"""Selection: Gumbel top-k statistics, bounded memory, determinism, filters, several targets,
and the headline claim on a real two-domain mixture."""

from __future__ import annotations

import itertools
import math
import tracemalloc

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.dsir.mixture import build_pool, ingest_files
from thresher.config import InputSpec
from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
from thresher.dsir.fit import fit_dsir, save_fit
from thresher.dsir.report import selection_report, to_markdown
from thresher.dsir.resample import (
    GUMBEL_MAX,
    SelectionError,
    StreamingTopK,
    gumbel_from_uniform,
    gumbel_noise,
    pick_target,
    read_selection,
    select_dsir,
    stream_candidates,
    target_quotas,
    uniform_from_bits,
    uniform_noise,
)
from thresher.dsir.weights import DsirScorer
from thresher.scorers.apply import score_shard
from thresher.storage.catalog import build_catalog, open_catalog

# -- noise and top-k ------------------------------------------------------------------------------


def test_noise_is_a_pure_function_of_seed_stream_and_doc_id():
    ids = [f"doc-{i}" for i in range(20_000)]
    g = gumbel_noise(ids, seed=5, stream="wiki")
    assert np.array_equal(g[::-1], gumbel_noise(ids[::-1], seed=5, stream="wiki"))  # order-free
    assert np.array_equal(g[100:200], gumbel_noise(ids[100:200], seed=5, stream="wiki"))  # subset-free
    assert not np.allclose(g, gumbel_noise(ids, seed=6, stream="wiki"))
    assert not np.allclose(g, gumbel_noise(ids, seed=5, stream="news"))
    # Standard Gumbel: mean = Euler's gamma, variance = pi^2 / 6 (20,000 draws: +-0.01, +-0.04).
    assert abs(g.mean() - 0.5772) < 0.04 and abs(g.var() - math.pi**2 / 6) < 0.12
    u = uniform_noise(ids, seed=5, stream="wiki")
    assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    # The extreme hash values still give finite noise, bounded by GUMBEL_MAX (used to prune).
    ends = uniform_from_bits(np.array([0, 2**64 - 1], dtype=np.uint64))
    assert 0 < ends[0] and ends[1] < 1
    extremes = gumbel_from_uniform(ends)
    assert np.isfinite(extremes).all() and extremes[1] == GUMBEL_MAX and g.max() < GUMBEL_MAX


@pytest.mark.parametrize("k,batch", [(1, 7), (10, 3), (10, 64), (50, 1000), (0, 5)])
def test_streaming_top_k_equals_a_full_sort_with_ties(k, batch):
    rng = np.random.default_rng(k + batch)
    n = 1000
    keys = rng.integers(0, 40, n).astype(np.float64)  # many ties: order falls back to doc_id
    ids = np.array([f"{i:05d}" for i in rng.permutation(n)])
    top = StreamingTopK(k)
    for start in range(0, n, batch):
        s = slice(start, start + batch)
        top.push(keys[s], ids[s], keys[s], np.zeros(len(keys[s])))
    got_keys, got_ids, _, _ = top.result()
    expected = sorted(zip(-keys, ids))[:k]
    assert list(zip(-got_keys, got_ids)) == expected
    assert top.peak_rows < 2 * k + batch and top.seen == n


def test_pruned_pick_equals_brute_force_gumbel_top_k():
    rng = np.random.default_rng(1)
    n, k = 20_000, 50
    ids = [f"doc{i}" for i in range(n)]
    log_w = np.concatenate([rng.normal(0, 300, n - 200), rng.normal(400, 3, 200)])  # real-DSIR-like spread
    batches = [pa.RecordBatch.from_pydict({"doc_id": ids[i : i + 1000], "log_weight": log_w[i : i + 1000]})
               for i in range(0, n, 1000)]
    pick = pick_target(batches, "t", k, method="gumbel", seed=9)
    keys = log_w + gumbel_noise(ids, 9, "t")
    expected = [ids[i] for i in np.lexsort((np.array(ids), -keys))[:k]]
    assert pick.top.result()[1].tolist() == expected
    assert pick.candidates == n and pick.top.seen < n / 4  # most documents were never hashed


def _pick_frequencies(log_w: np.ndarray, k: int, seeds: int) -> np.ndarray:
    ids = [f"item{i}" for i in range(len(log_w))]
    batch = pa.RecordBatch.from_pydict({"doc_id": ids, "log_weight": log_w})
    hits = np.zeros(len(log_w))
    for seed in range(seeds):
        pick = pick_target([batch], "t", k, method="gumbel", seed=seed)
        for doc_id in pick.top.result()[1]:
            hits[ids.index(doc_id)] += 1
    return hits / seeds


def _inclusion_without_replacement(w: np.ndarray, k: int) -> np.ndarray:
    """Exact inclusion probabilities of successive sampling without replacement, p ~ w."""
    p = np.zeros(len(w))
    for order in itertools.permutations(range(len(w)), k):
        prob, left = 1.0, w.sum()
        for i in order:
            prob *= w[i] / left
            left -= w[i]
        p[list(order)] += prob
    return p


def test_gumbel_top_k_samples_in_proportion_to_importance_weights():
    w = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    for k in (1, 2):
        freq = _pick_frequencies(np.log(w) + 700.0, k, seeds=3000)  # + 700: exp() would overflow
        expected = _inclusion_without_replacement(w, k)
        assert np.abs(freq - expected).max() < 0.035, (k, freq, expected)
    deterministic = pick_target([pa.RecordBatch.from_pydict({"doc_id": ["a", "b"], "log_weight": [0.0, 1.0]})],
                                "t", 1, method="top_k", seed=0)
    assert deterministic.top.result()[1].tolist() == ["b"]


def test_quotas_split_like_the_reference():
    assert target_quotas(10, ["a", "b", "c"], {"a": 1, "b": 1, "c": 1}) == [3, 3, 4]
    assert target_quotas(7, ["a", "b"], {"a": 0.5, "b": 0.5}) == [3, 4]
    assert target_quotas(5, ["a", "b"], {"a": 1.0}) == [5, 0]


def _peak_python_bytes(path, batch_rows: int, k: int) -> tuple[int, int]:
    con = duckdb.connect()
    con.execute("SET threads = 1")
    sql = f"SELECT doc_id, log_weight FROM read_parquet('{path}') WHERE n_tokens >= $min_length"
    tracemalloc.start()
    try:
        pick = pick_target(stream_candidates(con, sql, 100, batch_rows), "t", k, method="gumbel", seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        con.close()
    assert len(pick.top.result()[0]) == k
    return peak, pick.top.peak_rows


def test_selection_memory_does_not_grow_with_the_number_of_documents(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for n in (20_000, 200_000):
        paths[n] = tmp_path / f"w{n}.parquet"
        pq.write_table(pa.table({"doc_id": [f"{i:032x}" for i in range(n)],
                                 "log_weight": rng.normal(0, 50, n), "n_tokens": rng.integers(50, 500, n)}),
                       paths[n])
    small, small_rows = _peak_python_bytes(paths[20_000], batch_rows=2048, k=200)
    large, large_rows = _peak_python_bytes(paths[200_000], batch_rows=2048, k=200)
    materialised, _ = _peak_python_bytes(paths[200_000], batch_rows=200_000, k=200)
    print(f"peak Python heap: N=20k {small / 2**20:.2f} MiB, N=200k {large / 2**20:.2f} MiB, "
          f"N=200k in one batch {materialised / 2**20:.2f} MiB")
    assert small_rows <= 2 * 200 + 2048 and large_rows <= 2 * 200 + 2048
    assert large < 1.5 * small  # 10x the documents, the same memory
    assert materialised > 5 * large  # and the measurement does see a whole-N materialisation


# -- on a real mixture -----------------------------------------------------------------------------


def _shares(run, name: str) -> tuple[float, float, int]:
    with open_catalog(run) as con:
        selected = con.execute(
            f"SELECT avg((source = 'wiki.jsonl')::INT), count(*) FROM documents "
            f"JOIN selections_{name} USING (doc_id)").fetchall()[0]
        candidates = con.execute(
            "SELECT avg((source = 'wiki.jsonl')::INT) FROM documents_scored WHERE dsir_num_tokens >= 100"
        ).fetchall()[0][0]
    return selected[0], candidates, selected[1]


def test_selecting_toward_wikipedia_picks_wikipedia_and_lowers_kl(wiki_web_run):
    run, fitted, _ = wiki_web_run
    meta = select_dsir(run, fitted, DsirSelection(name="wiki_like", k=100, seed=11))
    build_catalog(run)
    selected_share, mixture_share, n = _shares(run, "wiki_like")
    report = selection_report(run, fitted, meta)
    (wiki,) = report["targets"]
    assert n == 100 and meta["targets"][0]["candidates"] > 500
    assert mixture_share < 0.25 and selected_share > 0.75
    markdown = to_markdown(report, meta)
    assert "| wiki | 100 |" in markdown and "Top 15 buckets" in markdown

    # One random sample of C4-heavy text is a noisy yardstick (its KL varies by +-0.05 here), so
    # the selection is compared with five, each at the same number of n-gram features.
    selected, random = [wiki["kl_target_selected"]], [wiki["kl_target_random"]]
    for seed in range(4):
        other = select_dsir(run, fitted, DsirSelection(name=f"wiki_like_{seed}", k=100, seed=seed))
        (entry,) = selection_report(run, fitted, other)["targets"]
        selected.append(entry["kl_target_selected"])
        random.append(entry["kl_target_random"])
    print(f"wiki share: selected {selected_share:.1%} of {n} vs candidates {mixture_share:.1%}; "
          f"KL(target||selected) {min(selected)}..{max(selected)} vs random {min(random)}..{max(random)} "
          f"(floor {wiki['kl_floor']}, KL(target||raw) {wiki['kl_target_raw']}, "
          f"{wiki['features_compared']:,} n-grams compared)")
    assert max(selected) < min(random)
    assert np.mean(selected) < 0.85 * np.mean(random)
    assert wiki["kl_floor"] < min(selected)


def test_same_seed_same_selection_other_seeds_differ(wiki_web_run):
    run, fitted, _ = wiki_web_run
    tables = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4), ("d", 5), ("e", 6)):
        select_dsir(run, fitted, DsirSelection(name=f"seed_{name}", k=100, seed=seed, random_baseline=False))
        tables[name] = read_selection(run, f"seed_{name}")[1]
    assert tables["a"].equals(tables["b"])
    metas = [read_selection(run, f"seed_{n}")[0] for n in "ab"]
    for meta in metas:
        for key in ("name", "selection", "selection_hash"):
            meta.pop(key)
    assert metas[0] == metas[1]
    assert not np.allclose(tables["a"].column("gumbel").to_numpy(), tables["c"].column("gumbel").to_numpy())
    # Over documents of 100+ tokens the log weights span hundreds of nats, so Gumbel noise
    # (sd 1.3) rarely changes which documents win. Among short documents, whose weights are
    # close together, it does: that is importance *sampling*, not top-k.
    short = "SELECT doc_id FROM score_dsir WHERE dsir_num_tokens BETWEEN 5 AND 60"
    sets = []
    for seed in range(4):
        select_dsir(run, fitted, DsirSelection(name=f"short_{seed}", k=10, seed=seed, candidates_sql=short,
                                              min_example_length=0, random_baseline=False))
        sets.append(frozenset(read_selection(run, f"short_{seed}")[1].column("doc_id").to_pylist()))
    assert all(len(s) == 10 for s in sets) and len(set(sets)) >= 3
    select_dsir(run, fitted, DsirSelection(name="short_0_again", k=10, seed=0, candidates_sql=short,
                                          min_example_length=0, random_baseline=False))
    assert frozenset(read_selection(run, "short_0_again")[1].column("doc_id").to_pylist()) == sets[0]


def test_seed_defaults_to_the_runs_seed(wiki_web_run):
    run, fitted, _ = wiki_web_run
    meta = select_dsir(run, fitted, DsirSelection(name="run_seed", k=5, random_baseline=False))
    assert meta["seed"] == 7 == run.read_manifest()["seed"]


def test_deterministic_top_k_is_the_k_largest_weights(wiki_web_run):
    run, fitted, _ = wiki_web_run
    for seed in (1, 2):
        select_dsir(run, fitted, DsirSelection(name=f"top_{seed}", k=40, method="top_k", seed=seed,
                                              random_baseline=False))
    first, second = (read_selection(run, f"top_{s}")[1] for s in (1, 2))
    assert first.equals(second)
    with open_catalog(run) as con:
        expected = [d for (d,) in con.execute(
            "SELECT doc_id FROM score_dsir WHERE dsir_num_tokens >= 100 "
            "ORDER BY dsir_wiki_log_weight DESC, doc_id LIMIT 40").fetchall()]
    assert first.column("doc_id").to_pylist() == expected
    assert first.column("rank").to_pylist() == list(range(1, 41))
    assert first.column("gumbel").null_count == 40


def test_candidates_from_sql_predicates_and_queries(wiki_web_run):
    run, fitted, _ = wiki_web_run
    meta = select_dsir(run, fitted, DsirSelection(name="web_only", k=30, where="source = 'c4.jsonl'"))
    build_catalog(run)
    with open_catalog(run) as con:
        sources = con.execute("SELECT DISTINCT source FROM documents JOIN selections_web_only USING (doc_id)"
                              ).fetchall()
        eligible = con.execute("SELECT count(*) FROM documents_scored WHERE source = 'c4.jsonl' "
                               "AND dsir_num_tokens >= 100").fetchall()[0][0]
    assert sources == [("c4.jsonl",)] and meta["targets"][0]["candidates"] == eligible

    few = "SELECT doc_id FROM documents WHERE source = 'wiki.jsonl' ORDER BY doc_id LIMIT 20"
    short = select_dsir(run, fitted, DsirSelection(name="few", k=50, candidates_sql=few, min_example_length=0))
    assert short["targets"][0] | {"log_weights": None} == {
        "target": "wiki", "quota": 50, "candidates": 20, "selected": 20, "peak_rows_held": 20, "log_weights": None}

    none_left = select_dsir(run, fitted, DsirSelection(name="none", k=5, min_example_length=10**9))
    assert none_left["selected_rows"] == 0
    with pytest.raises(SelectionError, match="single SQL"):
        select_dsir(run, fitted, DsirSelection(name="bad", k=5, where="1 = 1); SELECT 1; SELECT (1"))
    with pytest.raises(SelectionError, match="candidate query failed"):
        select_dsir(run, fitted, DsirSelection(name="bad", k=5, where="no_such_column > 1"))


def test_weights_of_another_fit_are_refused(wiki_web_run, dsir_targets):
    run, fitted, _ = wiki_web_run
    other = fit_dsir(run, DsirConfig(num_buckets=512, targets=[
        DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(dsir_targets["wiki"])])])]))
    with pytest.raises(SelectionError, match="lack weights from DSIR fit"):
        select_dsir(run, other, DsirSelection(name="stale", k=5))


def test_several_targets_with_proportions(sample_data, dsir_targets, tmp_path):
    pool = build_pool(sample_data, tmp_path / "pool", wiki_docs=60, alpaca_docs=150)
    run = ingest_files(tmp_path / "run", list(pool.values()))
    config = DsirConfig(targets=[
        DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(dsir_targets["wiki"])])]),
        DsirTarget(name="alpaca", inputs=[InputSpec(paths=[str(dsir_targets["alpaca"])], format="alpaca")]),
    ])
    fitted = fit_dsir(run, config)
    save_fit(run, fitted)
    scorer = DsirScorer.from_fit(fitted)
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    build_catalog(run)
    meta = select_dsir(run, fitted, DsirSelection(name="mix", k=61, min_example_length=20,
                                                  proportions={"wiki": 1, "alpaca": 2}))
    assert [t["quota"] for t in meta["targets"]] == [20, 41] and meta["selected_rows"] == 61
    build_catalog(run)
    with open_catalog(run) as con:
        rows = con.execute("SELECT target, source, count(*) FROM selections_mix JOIN documents USING (doc_id) "
                           "GROUP BY ALL ORDER BY ALL").fetchall()
        distinct = con.execute("SELECT count(DISTINCT doc_id) FROM selections_mix").fetchall()[0][0]
    by_target = {t: {s: n for tt, s, n in rows if tt == t} for t in ("wiki", "alpaca")}
    assert distinct == 61  # no document is chosen for two targets
    # Candidates (>= 20 tokens): 15% Wikipedia, 35% Alpaca, 50% C4.
    assert by_target["wiki"].get("wiki.jsonl", 0) / 20 >= 0.6
    assert by_target["alpaca"].get("alpaca.jsonl", 0) / 41 >= 0.9
    default = select_dsir(run, fitted, DsirSelection(name="by_size", k=100, min_example_length=20))
    sizes = fitted.target_sizes()
    assert default["proportions"]["wiki"] == pytest.approx(sizes["wiki"] / sum(sizes.values()))
