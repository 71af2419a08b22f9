"""Diversity selection (DEITA's rule, k-center) on real instruction data with planted paraphrases."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.embeddings.apply import embedding_parts, iter_vectors
from thresher.embeddings.config import DiversitySelection
from thresher.embeddings.diversity import DiversityError, greedy_batch, read_selection, select_diverse, work_dir
from thresher.storage.catalog import build_catalog, open_catalog


@pytest.fixture(scope="module")
def vectors(embedded_run, embed_config) -> tuple[dict[str, int], np.ndarray]:
    scorer = embed_config.scorer()
    ids, parts = [], []
    for doc_ids, v in iter_vectors([p for _, _, p in embedding_parts(embedded_run, scorer)], scorer.vector_column):
        ids += doc_ids
        parts.append(v)
    return {d: i for i, d in enumerate(ids)}, np.concatenate(parts)


def _mean_pairwise(v: np.ndarray) -> float:
    s = v @ v.T
    return float((s.sum() - np.trace(s)) / (len(v) * (len(v) - 1)))


def _reference_deita(order: list[str], position: dict[str, int], v: np.ndarray, threshold: float,
                     k: int | None = None) -> list[str]:
    kept: list[int] = []
    for doc_id in order:
        i = position[doc_id]
        if not kept or float((v[kept] @ v[i]).max()) <= threshold:
            kept.append(i)
            if k is not None and len(kept) == k:
                break
    inverse = {i: d for d, i in position.items()}
    return [inverse[i] for i in kept]


def test_greedy_batch_matches_the_sequential_rule():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 8))
    x = np.concatenate([base, base[:10] + 0.01 * rng.standard_normal((10, 8))]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prior = np.full(len(x), -np.inf, dtype=np.float32)
    prior[5] = 0.95  # already covered by an earlier batch
    keep, nearest = greedy_batch(x, prior, 0.9)
    kept: list[int] = []
    for i in range(len(x)):
        if prior[i] <= 0.9 and (not kept or (x[kept] @ x[i]).max() <= 0.9):
            kept.append(i)
    assert np.flatnonzero(keep).tolist() == kept and not keep[5]
    assert keep[30:].tolist() == [i == 35 for i in range(30, 40)]  # copies go, but 5 was not kept here
    assert nearest[0] == -np.inf and nearest[5] >= 0.95
    assert (np.delete(nearest[30:40], 5) > 0.9).all() and nearest[35] <= 0.9


def test_deita_keeps_no_paraphrase_pair_and_follows_the_rule(embedded_run, planted, vectors, embed_config):
    run, scorer = embedded_run, embed_config.scorer()
    position, v = vectors
    meta = select_diverse(run, scorer, DiversitySelection(name="deita_all", threshold=0.9))
    _, table = read_selection(run, "deita_all")
    kept = table.column("doc_id").to_pylist()
    assert table.column("rank").to_pylist() == list(range(1, len(kept) + 1))
    # exactly the sequential rule (no score: doc_id order), with the exact kept-set index
    assert kept == _reference_deita(sorted(position), position, v, 0.9)
    assert meta["index"]["kind"] == "flat" and meta["examined"] == meta["candidates"] == len(position)
    # planted paraphrases: a pair more similar than the threshold is never kept whole
    kept_set = set(kept)
    similar = [(a, b) for a, b in planted.pairs if float(v[position[a]] @ v[position[b]]) > 0.9]
    assert len(similar) >= 30 and not any(a in kept_set and b in kept_set for a, b in similar)
    # one of each pair stays, unless a third kept row covers both (an instruction asked three times)
    assert np.mean([a in kept_set or b in kept_set for a, b in similar]) >= 0.9
    kept_vectors = v[[position[d] for d in kept]]
    sims = kept_vectors @ kept_vectors.T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 0.9 + 1e-6
    # more diverse than random subsets of the same size (seeded): lower mean pairwise similarity, and no
    # near-duplicate pair where random subsets of that size hold dozens
    rng = np.random.default_rng(7)
    subsets = [rng.choice(len(position), len(kept), replace=False) for _ in range(100)]
    random_means = np.array([_mean_pairwise(v[s]) for s in subsets])
    random_dups = [int((np.triu(v[s] @ v[s].T, 1) > 0.9).sum()) for s in subsets]
    kept_mean = _mean_pairwise(kept_vectors)
    print(f"\nDEITA@0.9 kept {len(kept)}/{len(position)}: mean pairwise similarity {kept_mean:.4f} vs random "
          f"{random_means.mean():.4f} (lower than {np.mean(random_means > kept_mean):.0%} of 100 random subsets); "
          f"pairs > 0.9: 0 vs {np.mean(random_dups):.1f}")
    assert kept_mean < random_means.mean() and np.mean(random_means > kept_mean) >= 0.8
    assert min(random_dups) >= 20
    report = meta["report"]
    assert report["selected_pairs_above_threshold"] == 0
    assert report["selected_mean_pairwise_similarity"] < report["random_mean_pairwise_similarity"]


def test_deita_with_a_score_and_a_budget(embedded_run, vectors, embed_config):
    run, scorer = embedded_run, embed_config.scorer()
    position, v = vectors
    selection = DiversitySelection(name="deita_long", score_sql="gopher_word_count * 1.0", threshold=0.8, k=120,
                                   where="source = 'gpt4.json'", batch_rows=50)
    meta = select_diverse(run, scorer, selection)
    with open_catalog(run) as con:
        order = [d for (d,) in con.execute(
            "SELECT doc_id FROM instructions_scored WHERE source = 'gpt4.json' "
            "ORDER BY gopher_word_count DESC NULLS LAST, doc_id").fetchall()]
        words = dict(con.execute("SELECT doc_id, gopher_word_count FROM instructions_scored").fetchall())
    _, table = read_selection(run, "deita_long")
    kept = table.column("doc_id").to_pylist()
    assert kept == _reference_deita(order, position, v, 0.8, k=120)  # across batches of 50
    assert len(kept) == 120 == meta["selected_rows"] and meta["examined"] < meta["candidates"] == len(order)
    assert table.column("score").to_pylist() == [float(words[d]) for d in kept]
    nearest = table.column("nearest_similarity").to_pylist()
    assert nearest[0] is None and all(s <= 0.8 for s in nearest[1:])
    # deterministic: the same settings give the same selection
    select_diverse(run, scorer, selection)
    assert read_selection(run, "deita_long")[1].equals(table)
    build_catalog(run)
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*) FROM selections_deita_long").fetchall() == [(120,)]


def test_ivf_on_disk_index_agrees_with_the_exact_one(embedded_run, embed_config):
    run, scorer = embedded_run, embed_config.scorer()
    exact = select_diverse(run, scorer, DiversitySelection(name="flat", threshold=0.9, index="flat"))
    full = select_diverse(run, scorer, DiversitySelection(name="ivf_full", threshold=0.9, index="ivf",
                                                          ivf_lists=8, ivf_probe=8, seed=1))
    cheap = select_diverse(run, scorer, DiversitySelection(name="ivf_cheap", threshold=0.9, index="ivf",
                                                           ivf_lists=8, ivf_probe=1, seed=1))
    rows = {n: set(read_selection(run, n)[1].column("doc_id").to_pylist()) for n in ("flat", "ivf_full", "ivf_cheap")}
    assert full["index"]["on_disk"] and full["index"]["bytes_on_disk"] > 0 and full["index"]["probe"] == 8
    assert not (work_dir(run, "ivf_full") / "kept.ivf").exists()  # scratch removed
    # every list probed: only int8 rounding differs from the exact index
    assert len(rows["flat"] ^ rows["ivf_full"]) <= 2
    # one list of eight probed: some near-duplicates in other lists are missed (both kept), never more
    # rows dropped than the exact index drops
    assert len(rows["ivf_cheap"]) >= len(rows["flat"]) - 2
    assert len(rows["ivf_cheap"] & rows["flat"]) >= 0.95 * len(rows["flat"])
    print(f"\nkept: flat {exact['selected_rows']}, ivf probe 8/8 {full['selected_rows']}, "
          f"probe 1/8 {cheap['selected_rows']} (pairs > 0.9 in its sample: "
          f"{cheap['report']['selected_pairs_above_threshold']})")


def test_kcenter_picks_representatives(embedded_run, vectors, embed_config):
    run, scorer = embedded_run, embed_config.scorer()
    position, v = vectors
    meta = select_diverse(run, scorer, DiversitySelection(name="centres", method="kcenter", k=60,
                                                          score_sql="gopher_word_count"))
    _, table = read_selection(run, "centres")
    picks = table.column("doc_id").to_pylist()
    assert len(set(picks)) == 60
    with open_catalog(run) as con:
        first = con.execute("SELECT doc_id FROM instructions_scored ORDER BY gopher_word_count DESC NULLS LAST, "
                            "doc_id LIMIT 1").fetchall()[0][0]
    assert picks[0] == first
    centres = v[[position[d] for d in picks]]
    # greedy farthest point: each pick is the candidate least similar to the centres before it
    for t in range(1, 10):
        nearest = (v @ centres[:t].T).max(axis=1)
        assert abs(float(nearest.min()) - float((centres[t] @ centres[:t].T).max())) < 1e-4
    covering = 1.0 - float((v @ centres.T).max(axis=1).min())
    assert abs(covering - meta["covering_radius"]) < 1e-4
    kept_mean = _mean_pairwise(centres)
    rng = np.random.default_rng(3)
    random_means = [_mean_pairwise(v[rng.choice(len(v), 60, replace=False)]) for _ in range(50)]
    assert kept_mean < min(random_means)
    assert meta["report"]["selected_mean_pairwise_similarity"] < meta["report"]["random_mean_pairwise_similarity"]


def test_bad_selections_fail_with_the_reason(embedded_run, embed_config):
    scorer = embed_config.scorer()
    with pytest.raises(DiversityError, match="where"):
        select_diverse(embedded_run, scorer, DiversitySelection(name="bad", where="1; DROP TABLE x"))
    with pytest.raises(DiversityError, match="no_such_column"):
        select_diverse(embedded_run, scorer, DiversitySelection(name="bad", score_sql="no_such_column"))
    with pytest.raises(ValueError, match="kcenter needs k"):
        DiversitySelection(name="bad", method="kcenter")
    assert not (embedded_run.root / "selections" / "bad" / "selected.parquet").exists()
