"""Fitting: budgets, shards, targets from files and from SQL, storage, identity, config."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tests.dsir.mixture import build_pool, ingest_files, wiki_chunks, write_jsonl
from thresher.config import InputSpec
from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget, load_dsir_config
from thresher.dsir.features import HashedNgramFeaturizer
from thresher.dsir.fit import (
    FitError,
    FittedDsir,
    count_features,
    fit_dsir,
    fit_identity,
    fit_path,
    load_fit,
    run_text_batches,
    save_fit,
)
from thresher.storage.catalog import build_catalog, open_catalog


@pytest.fixture(scope="module")
def small_run(sample_data, tmp_path_factory):
    directory = tmp_path_factory.mktemp("fit")
    pool = build_pool(sample_data, directory / "pool", wiki_docs=30, alpaca_docs=40)
    run = ingest_files(directory / "run", list(pool.values()))
    build_catalog(run)
    target = write_jsonl(directory / "target.jsonl", wiki_chunks(sample_data, range(0, 3)))
    return run, target, directory


def _config(target, **kwargs) -> DsirConfig:
    return DsirConfig(targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(target)])])], **kwargs)


def test_count_features_budget_and_exhaustion():
    featurizer = HashedNgramFeaturizer(num_buckets=50)
    texts = ["a b c", "d e", "f g h i", "j"]  # features 5, 3, 7, 1
    assert count_features(iter([texts]), featurizer, None).features == 16
    stopped = count_features(iter([texts[:2], texts[2:]]), featurizer, 6)
    assert (stopped.docs, stopped.features, stopped.exhausted) == (2, 8, False)
    exact = count_features(iter([texts]), featurizer, 8)  # total == budget does not stop yet
    assert (exact.docs, exact.features) == (3, 15)
    assert count_features(iter([texts]), featurizer, 100).exhausted


def test_raw_budget_is_spent_round_robin_over_every_shard(small_run):
    run, target, _ = small_run
    assert len(run.data_parts()) == 3
    first_batches = list(run_text_batches(run, batch_rows=10))[:3]
    sources = []
    for texts in first_batches:  # one batch (Arrow strings) from each shard before any second batch
        with open_catalog(run) as con:
            sources.append(con.execute("SELECT DISTINCT source FROM documents WHERE text = $t",
                                       {"t": texts[0].as_py()}).fetchall()[0][0])
    assert sorted(sources) == ["alpaca.jsonl", "c4.jsonl", "wiki.jsonl"]
    fitted = fit_dsir(run, _config(target, num_tokens_to_fit=20_000, fit_batch_rows=10))
    assert not fitted.stats["raw"]["exhausted"] and 20_000 < fitted.stats["raw"]["features"] < 30_000


def test_sql_target_equals_the_same_text_from_files(small_run):
    run, _, directory = small_run
    with open_catalog(run) as con:
        texts = [t for (t,) in con.execute(
            "SELECT text FROM documents WHERE source = 'wiki.jsonl' ORDER BY source_row").fetchall()]
    as_file = write_jsonl(directory / "wiki-from-run.jsonl", texts)
    from_file = fit_dsir(run, _config(as_file))
    from_sql = fit_dsir(run, DsirConfig(targets=[DsirTarget(
        name="wiki", sql="SELECT text FROM documents_scored WHERE source = 'wiki.jsonl'")]))
    assert np.array_equal(from_sql.target_counts, from_file.target_counts)
    assert from_sql.fit_hash == from_file.fit_hash  # the hash is of content, not of where it came from
    with pytest.raises(FitError, match="text"):
        fit_dsir(run, DsirConfig(targets=[DsirTarget(name="wiki", sql="SELECT doc_id, source FROM documents")]))
    with pytest.raises(FitError, match="wiki"):
        fit_dsir(run, DsirConfig(targets=[DsirTarget(name="wiki", sql="SELECT text FROM no_such_view")]))


def test_alpaca_target_and_quarantine_are_read_through_thresher_readers(small_run, dsir_targets, tmp_path):
    run, _, _ = small_run
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine text here"}\n{"text": 5}\nnot json\n', encoding="utf-8")
    fitted = fit_dsir(run, DsirConfig(targets=[
        DsirTarget(name="alpaca", inputs=[InputSpec(paths=[str(dsir_targets["alpaca"])], format="alpaca")]),
        DsirTarget(name="broken", inputs=[InputSpec(paths=[str(broken)])]),
    ]))
    stats = fitted.stats["targets"]
    assert stats["alpaca"]["docs"] == 2500 and stats["alpaca"]["quarantined_rows"] == 0
    assert stats["broken"]["docs"] == 1 and stats["broken"]["quarantined_rows"] == 2


def test_laplace_smoothing_and_epsilon():
    counts = np.array([0, 1, 3, 0], dtype=np.int64)
    fitted = FittedDsir(ngrams=1, num_buckets=4, targets=("t",), raw_counts=np.array([1, 1, 1, 1]),
                        target_counts=counts[None, :], laplace=1.0, epsilon=0.0)
    assert np.allclose(fitted.target_probs[0], [1 / 8, 2 / 8, 4 / 8, 1 / 8])
    assert np.allclose(fitted.log_ratio[0], np.log(np.array([1, 2, 4, 1]) / 8) - np.log(0.25))
    plain = FittedDsir(ngrams=1, num_buckets=4, targets=("t",), raw_counts=np.array([1, 1, 1, 1]),
                       target_counts=counts[None, :])
    assert np.isclose(plain.log_ratio[0, 0], np.log(1e-8) - np.log(0.25 + 1e-8))  # the reference's 1e-8
    assert fitted.fit_hash != plain.fit_hash
    with pytest.raises(FitError, match="no n-grams"):
        FittedDsir(ngrams=1, num_buckets=4, targets=("t",), raw_counts=np.array([1, 1, 1, 1]),
                   target_counts=np.zeros((1, 4), dtype=np.int64))


def test_save_load_roundtrip_catalog_view_and_corruption(small_run):
    run, target, _ = small_run
    fitted = fit_dsir(run, _config(target))
    path = save_fit(run, fitted, identity="some-identity")
    assert path == fit_path(run, fitted.fit_hash) and path.stat().st_size < 400_000
    loaded = load_fit(run)  # the newest, through dsir/fit.json
    assert loaded.fit_hash == fitted.fit_hash and np.array_equal(loaded.log_ratio, fitted.log_ratio)
    assert loaded.stats == json.loads(json.dumps(fitted.stats))
    build_catalog(run)
    with open_catalog(run) as con:
        rows = con.execute("SELECT distribution, count(*), sum(prob) FROM dsir_fits WHERE fit_hash = $h "
                           "GROUP BY 1 ORDER BY 1", {"h": fitted.fit_hash}).fetchall()
    assert [(d, n) for d, n, _ in rows] == [("raw", 10_000), ("wiki", 10_000)]
    assert all(abs(total - 1) < 1e-9 for _, _, total in rows)

    table = pq.read_table(path)
    counts = table.column("count").to_pylist()
    counts[7] += 1
    pq.write_table(table.set_column(table.schema.get_field_index("count"), "count", pa.array(counts)), path)
    with pytest.raises(FitError, match="corrupt"):
        load_fit(run, fitted.fit_hash)
    with pytest.raises(FitError, match="no DSIR fit 0000"):
        load_fit(run, "0000")


def test_fit_identity_follows_content(small_run, tmp_path, sample_data):
    run, target, _ = small_run
    copy = write_jsonl(tmp_path / "copy.jsonl", wiki_chunks(sample_data, range(0, 3)))
    assert fit_identity(run, _config(target)) == fit_identity(run, _config(copy))  # moved file, same content
    assert fit_identity(run, _config(target)) != fit_identity(run, _config(target, num_buckets=5000))
    edited = write_jsonl(tmp_path / "edited.jsonl", wiki_chunks(sample_data, range(0, 4)))
    assert fit_identity(run, _config(target)) != fit_identity(run, _config(edited))
    with_selection = _config(target).model_copy(update={"selection": DsirSelection(name="x", k=3)})
    assert fit_identity(run, with_selection) == fit_identity(run, _config(target))


def test_config_validation_and_yaml(tmp_path):
    with pytest.raises(ValidationError, match="exactly one"):
        DsirTarget(name="t", inputs=[InputSpec(paths=["a.jsonl"])], sql="SELECT 1")
    with pytest.raises(ValidationError, match="exactly one"):
        DsirTarget(name="t")
    with pytest.raises(ValidationError, match="raw"):
        DsirTarget(name="raw", sql="SELECT 1")
    with pytest.raises(ValidationError):
        DsirTarget(name="Bad-Name", sql="SELECT 1")
    one = DsirTarget(name="t", sql="SELECT text FROM documents")
    with pytest.raises(ValidationError, match="unique"):
        DsirConfig(targets=[one, one])
    with pytest.raises(ValidationError, match="laplace or epsilon"):
        DsirConfig(targets=[one], epsilon=0)
    with pytest.raises(ValidationError, match="unknown targets"):
        DsirConfig(targets=[one], selection=DsirSelection(name="s", k=1, proportions={"u": 1.0}))
    assert DsirConfig(targets=[one]).raw_budget == 1_000_000_000
    assert DsirConfig(targets=[one], num_tokens_to_fit="all").raw_budget is None

    (tmp_path / "data").mkdir()
    (tmp_path / "dsir.yaml").write_text(
        "targets:\n  - name: wiki\n    inputs: [{paths: [data/wiki.jsonl]}]\n"
        "selection: {name: wiki_like, k: 10, seed: 3}\n", encoding="utf-8")
    config = load_dsir_config(tmp_path / "dsir.yaml")
    assert config.targets[0].inputs[0].paths == [str(tmp_path / "data" / "wiki.jsonl")]
    assert config.selection.seed == 3
    (tmp_path / "typo.yaml").write_text("targets: []\nbuckets: 3\n", encoding="utf-8")
    from thresher.config import ConfigError

    with pytest.raises(ConfigError, match="buckets"):
        load_dsir_config(tmp_path / "typo.yaml")


def test_sql_target_identity_ignores_hidden_work_directories(small_run, tmp_path):
    """Checkpoints an unfinished stage leaves in a hidden work directory (no catalog view reads them)
    must not change what a SQL target's fit is cached under; a new score table must."""
    import shutil

    from thresher.storage.run_dir import RunDir

    run = RunDir(tmp_path / "run")
    shutil.copytree(small_run[0].root, run.root)
    config = DsirConfig(targets=[DsirTarget(name="wiki", sql="SELECT text FROM documents WHERE source = 'wiki.jsonl'")])
    before = fit_identity(run, config)
    table = pa.table({"doc_id": ["a"], "x": [1.0]})
    (run.root / ".dedup-work" / "documents" / "checkpoints").mkdir(parents=True)
    pq.write_table(table, run.root / ".dedup-work" / "documents" / "checkpoints" / "band-00.parquet")
    assert fit_identity(run, config) == before
    (run.root / "scores" / "extra@1").mkdir(parents=True)
    pq.write_table(table, run.root / "scores" / "extra@1" / "part-x.parquet")
    assert fit_identity(run, config) != before
