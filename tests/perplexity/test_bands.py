from __future__ import annotations

import random

import duckdb
import pytest

from thresher.perplexity.bands import catalog_views


def make_views(con, existing):
    views = catalog_views(con, existing)
    for name, sql, _ in views:
        con.execute(f'CREATE VIEW "{name}" AS {sql}')
    return [name for name, _, _ in views]


@pytest.fixture
def con():
    connection = duckdb.connect()
    rng = random.Random(0)
    values = list(range(1, 101))
    rng.shuffle(values)
    rows = [(f"d{v:03d}", float(v)) for v in values] + [("n1", None), ("n2", None)]
    connection.execute("CREATE TABLE kenlm_scores (doc_id VARCHAR, kenlm_perplexity DOUBLE, kenlm_words BIGINT)")
    connection.executemany("INSERT INTO kenlm_scores VALUES (?, ?, 1)", rows)
    connection.execute("CREATE VIEW score_kenlm AS SELECT * FROM kenlm_scores")
    yield connection
    connection.close()


def test_views_only_for_perplexity_scores_that_exist(con):
    assert catalog_views(con, {"documents", "score_heuristics"}) == []
    names = make_views(con, {"documents", "score_kenlm"})
    assert names == ["perplexity_bands_kenlm", "perplexity_cutoffs"]
    # a name already taken is left alone
    assert [n for n, _, _ in catalog_views(con, {"score_kenlm", "perplexity_bands_kenlm"})] == ["perplexity_cutoffs"]


def test_ccnet_bands_use_this_runs_percentiles(con):
    make_views(con, {"score_kenlm"})
    (p30, p60, scored), = con.execute("SELECT p30, p60, scored FROM perplexity_cutoffs").fetchall()
    assert scored == 100
    assert p30 == pytest.approx(30.7) and p60 == pytest.approx(60.4)  # linear interpolation over 1..100
    counts = dict(con.execute("SELECT kenlm_band, count(*) FROM perplexity_bands_kenlm GROUP BY ALL").fetchall())
    assert counts == {"head": 30, "middle": 30, "tail": 40, None: 2}
    assert con.execute("SELECT max(kenlm_perplexity) FROM perplexity_bands_kenlm WHERE kenlm_band = 'head'"
                       ).fetchall() == [(30.0,)]


@pytest.mark.parametrize("keep", [0.1, 0.2, 0.5])
def test_percentile_predicates_keep_exact_shares(con, keep):
    make_views(con, {"score_kenlm"})

    def ids(predicate: str) -> list[str]:
        return [r[0] for r in con.execute(
            f"SELECT doc_id FROM perplexity_bands_kenlm WHERE {predicate} ORDER BY kenlm_perplexity").fetchall()]

    n = round(100 * keep)
    low = ids(f"kenlm_pp_percentile < {keep}")
    high = ids(f"kenlm_pp_percentile >= 1 - {keep}")
    middle = ids(f"kenlm_pp_percentile >= (1 - {keep}) / 2 AND kenlm_pp_percentile < (1 + {keep}) / 2")
    assert low == [f"d{v:03d}" for v in range(1, n + 1)]
    assert high == [f"d{v:03d}" for v in range(101 - n, 101)]
    assert len(middle) == n and middle[0] == f"d{50 - n // 2 + 1:03d}"
    assert con.execute("SELECT count(*) FROM perplexity_bands_kenlm WHERE kenlm_pp_percentile IS NULL"
                       ).fetchall() == [(2,)]


def test_ties_are_broken_by_doc_id(con):
    con.execute("UPDATE kenlm_scores SET kenlm_perplexity = 7 WHERE kenlm_perplexity IS NOT NULL")
    make_views(con, {"score_kenlm"})
    rows = con.execute("SELECT doc_id, kenlm_pp_percentile FROM perplexity_bands_kenlm "
                       "WHERE kenlm_pp_percentile IS NOT NULL ORDER BY kenlm_pp_percentile").fetchall()
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert len({r[1] for r in rows}) == 100


def test_both_scorers_get_bands(con):
    con.execute("CREATE TABLE lm AS SELECT doc_id, kenlm_perplexity * 2 AS lm_perplexity FROM kenlm_scores")
    con.execute("CREATE VIEW score_lm_perplexity AS SELECT * FROM lm")
    names = make_views(con, {"score_kenlm", "score_lm_perplexity"})
    assert names == ["perplexity_bands_kenlm", "perplexity_bands_lm_perplexity", "perplexity_cutoffs"]
    assert con.execute("SELECT scorer, scored FROM perplexity_cutoffs ORDER BY scorer").fetchall() == [
        ("kenlm", 100), ("lm_perplexity", 100)]
    assert con.execute("SELECT count(*) FROM perplexity_bands_lm_perplexity WHERE lm_band = 'middle'"
                       ).fetchall() == [(30,)]


@pytest.mark.usefixtures("prefect_harness")
def test_flow_scores_a_run_publishes_histograms_and_bands_join_documents(sample_data, tmp_path, tmp_path_factory,
                                                                        monkeypatch):
    from prefect.artifacts import Artifact

    from tests.perplexity import perplexity_data as pdata
    from thresher.config import IngestConfig, InputSpec, ScorerSpec
    from thresher.flows.artifacts import artifact_key
    from thresher.flows.perplexity import perplexity_flow
    from thresher.storage import catalog
    from thresher.storage.catalog import open_catalog
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.readers import discover_shards
    from thresher.storage.run_dir import RunDir

    model = pdata.trained_kenlm(sample_data, tmp_path_factory.getbasetemp() / "perplexity-models")
    run = RunDir(tmp_path / "run")
    run.init()
    spec = InputSpec(paths=[str(sample_data / "c4_sample.jsonl")], format="c4")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    monkeypatch.setattr(catalog, "DERIVED_VIEW_PROVIDERS",
                        ["thresher.perplexity.bands:catalog_views"])
    result = perplexity_flow(str(run.root), [ScorerSpec(name="kenlm", params={"model": str(model)})])
    (summary,) = result["scorers"]
    assert summary["scorer"] == "kenlm@1" and summary["rows"] == 200
    (dist,) = result["distributions"]
    assert dist["scored"] == 200 and sum(b["documents"] for b in dist["histogram"]) == 200
    assert dist["quantiles"]["p30"] < dist["quantiles"]["p60"]
    artifact = Artifact.get(artifact_key(run.root.name, "perplexity", "kenlm"))
    assert artifact is not None and "head < P30" in artifact.data and "█" in artifact.data
    with open_catalog(run) as con:
        bands = dict(con.execute("SELECT kenlm_band, count(*) FROM documents_scored "
                                 "JOIN perplexity_bands_kenlm USING (doc_id, kenlm_perplexity) GROUP BY ALL"
                                 ).fetchall())
        assert bands == {"head": 60, "middle": 60, "tail": 80}
        (p30,), = con.execute("SELECT p30 FROM perplexity_cutoffs").fetchall()
        assert p30 == pytest.approx(dist["quantiles"]["p30"])
    # a rerun is served from the cache; a missing model fails before any task runs
    again = perplexity_flow(str(run.root), [ScorerSpec(name="kenlm", params={"model": str(model)})])
    assert again["scorers"][0]["shards_skipped"] == 1
    with pytest.raises(FileNotFoundError, match="does not exist"):
        perplexity_flow(str(run.root), [ScorerSpec(name="kenlm", params={"model": str(tmp_path / "none.bin")})])
