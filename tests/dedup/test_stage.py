"""The dedup stage over real run directories: sidecars, determinism, resume, survivors, prior runs."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from tests.dedup.runs import by_url, dedup_outputs, ingest, read_dir, write_shards
from thresher.config import IngestConfig, InputSpec
from thresher.dedup import DedupConfig, cluster_table, dedup_run
from thresher.dedup.index import IncompatibleIndexError, MissingIndexError, index_parts
from thresher.dedup.stage import ClusterOutputs, cluster_cache_key, cluster_index
from thresher.dedup.tables import PARAMS_METADATA, clusters_path, signatures_path
from thresher.scorers.apply import score_shard
from thresher.scorers.heuristics import HeuristicsScorer
from thresher.storage.catalog import open_catalog
from thresher.storage.ingest import ingest_shard
from thresher.storage.readers import discover_shards
from thresher.storage.run_dir import RunDir


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    run = ingest(tmp_path_factory.mktemp("reference") / "run", inputs)
    result = dedup_run(run.root, DedupConfig())
    return run, result, dedup_outputs(run)


def test_sidecars_have_every_document_in_shard_order(reference):
    run, result, _ = reference
    stats = result["tables"]["documents"]
    assert stats["exact"]["duplicates"] >= 2 and stats["minhash"]["duplicates"] > 50
    for _, shard_id, part in run.data_parts():
        doc_ids = pq.read_table(part, columns=["doc_id"]).column("doc_id")
        for key in ("exact_dedup@1", "minhash_dedup@1"):
            sidecar = pq.read_table(run.score_part(key, shard_id))
            assert sidecar.column("doc_id").equals(doc_ids)
            params = json.loads(pq.read_schema(run.score_part(key, shard_id)).metadata[PARAMS_METADATA])
            assert params["cluster_params"]["seed"] == 1 and params["cluster_params"]["bands"] == 14
    rows = read_dir(run.root / "scores" / "minhash_dedup@1").to_pylist()
    singletons = [r for r in rows if r["minhash_cluster_size"] == 1]
    assert singletons and all(not r["minhash_is_duplicate"] and r["minhash_survivor_id"] == r["doc_id"]
                              == r["minhash_cluster_id"] for r in singletons)
    clusters: dict = {}
    for r in rows:
        clusters.setdefault(r["minhash_cluster_id"], []).append(r)
    for members in clusters.values():
        survivors = [m for m in members if not m["minhash_is_duplicate"]]
        assert len(survivors) == 1 and len(members) == members[0]["minhash_cluster_size"]
        assert survivors[0]["doc_id"] == min(m["doc_id"] for m in members)  # default rule: lowest doc_id
        assert {m["minhash_survivor_id"] for m in members} == {survivors[0]["doc_id"]}
    exact = by_url(run, "exact_dedup@1")
    assert exact[len(exact) - 2]["exact_is_duplicate"] != exact[0]["exact_is_duplicate"]  # one of each pair kept
    assert exact[0]["exact_hash"] == exact[len(exact) - 2]["exact_hash"]
    params = json.loads((run.root / "dedup" / "params.json").read_text())
    assert params["signature_params"]["seed"] == 1
    with open_catalog(run) as con:
        views = {r[0] for r in con.execute("SELECT name FROM thresher_views").fetchall()}
        assert {"dedup_signatures", "dedup_band_keys", "dedup_edges", "dedup_clusters",
                "dedup_exact_clusters", "score_minhash_dedup", "score_exact_dedup"} <= views
        assert con.execute("SELECT count(*), sum(minhash_is_duplicate::INT) FROM documents_scored").fetchall() == [
            (len(rows), stats["minhash"]["duplicates"])]


def test_same_input_gives_identical_outputs_whatever_the_shard_order(reference, inputs, tmp_path, monkeypatch):
    import thresher.dedup.stage as stage

    run, _, expected = reference
    again = ingest(tmp_path / "again", inputs)
    monkeypatch.setattr(stage, "TEXT_BYTES_PER_SLICE", 5000)  # hash in slices of a few documents
    dedup_run(again.root, DedupConfig(batch_rows=37))  # and other batch boundaries
    got = dedup_outputs(again)
    assert expected.keys() == got.keys()
    for name in expected:
        if name.startswith("dedup/"):
            continue
        assert expected[name].equals(got[name]), name
    for name in ("dedup/signatures", "dedup/band_keys", "dedup/clusters", "dedup/exact_clusters", "dedup/edges"):
        assert expected[name].equals(got[name]), name

    # the cluster step over the shards in reverse order writes byte-for-byte the same tables
    config = DedupConfig()
    parts = list(reversed(index_parts(run, config, "documents")))
    outputs = ClusterOutputs(tmp_path / "e.parquet", tmp_path / "x.parquet", tmp_path / "c.parquet")
    cluster_index(parts, config, outputs, cache_key=cluster_cache_key(run, config, "documents"), work=tmp_path / "w")
    assert pq.read_table(outputs.clusters).equals(pq.read_table(clusters_path(run, "documents")))
    assert pq.read_table(outputs.edges).equals(pq.read_table(run.root / "dedup/edges/part-documents.parquet"))


def test_rerun_skips_and_redoes_only_what_is_missing(reference, tmp_path):
    source, _, expected = reference
    run = RunDir(tmp_path / "copy")
    shutil.copytree(source.root, run.root)
    result = dedup_run(run.root, DedupConfig())
    assert all(s["skipped"] for s in result["signatures"] + result["sidecars"])
    assert result["tables"]["documents"]["skipped"]

    shard = run.data_parts()[1][1]
    signatures_path(run, shard).unlink()
    clusters_path(run, "documents").unlink()
    result = dedup_run(run.root, DedupConfig())
    assert [s["skipped"] for s in result["signatures"]].count(False) == 1
    assert not result["tables"]["documents"]["skipped"]
    got = dedup_outputs(run)
    for name in expected:
        assert expected[name].equals(got[name]), name
    assert not list(run.root.rglob("*.tmp-*")) and not (run.root / ".dedup-work" / "documents").exists()


def test_a_crash_in_the_cluster_step_resumes_to_identical_outputs(reference, tmp_path, monkeypatch):
    source, _, expected = reference
    run = RunDir(tmp_path / "crash")
    shutil.copytree(source.root, run.root)
    shutil.rmtree(run.root / "dedup" / "clusters")
    shutil.rmtree(run.root / "scores" / "minhash_dedup@1")

    import thresher.dedup.clustering as clustering

    real_copy = clustering.copy_query
    calls = []

    def crash_on_third(con, sql, path, schema, key):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed while writing clusters")
        return real_copy(con, sql, path, schema, key)

    monkeypatch.setattr(clustering, "copy_query", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        dedup_run(run.root, DedupConfig())
    assert not clusters_path(run, "documents").exists()
    monkeypatch.setattr(clustering, "copy_query", real_copy)
    resumed = dedup_run(run.root, DedupConfig())
    # every unit of the cluster step had finished before the crash: none is computed again
    assert resumed["tables"]["documents"]["checkpoints"] == {"reused": 16, "computed": 0}
    got = dedup_outputs(run)
    for name in expected:
        assert expected[name].equals(got[name]), name


def test_survivor_is_the_highest_score(reference, tmp_path):
    source, _, _ = reference
    run = RunDir(tmp_path / "scored")
    shutil.copytree(source.root, run.root)
    scorer = HeuristicsScorer()
    for table, shard_id, _ in run.data_parts():
        score_shard(run, scorer, table, shard_id)
    with pytest.raises(ValueError, match="no_such_column"):
        cluster_table(run, DedupConfig(survivor="highest_score", survivor_column="no_such_column"), "documents")
    for rule, pick in (("highest_score", max), ("lowest_score", min)):
        dedup_run(run.root, DedupConfig(survivor=rule, survivor_column="gopher_word_count"))
        with open_catalog(run) as con:
            rows = con.execute("SELECT doc_id, gopher_word_count, minhash_cluster_id, minhash_survivor_id, "
                               "minhash_is_duplicate FROM documents_scored WHERE minhash_cluster_size > 1").fetchall()
        clusters: dict = {}
        for row in rows:
            clusters.setdefault(row[2], []).append(row)
        differs = 0
        for members in clusters.values():
            best = pick(m[1] for m in members)
            expected = min(m[0] for m in members if m[1] == best)  # ties: lowest doc_id
            assert {m[3] for m in members} == {expected}
            assert [m[0] for m in members if not m[4]] == [expected]
            differs += expected != min(m[0] for m in members)
        assert differs > 0  # the rule changed some survivors


def test_incremental_dedup_against_a_prior_run(corpus, tmp_path):
    old_texts, new_texts = corpus[:150], corpus[150:]
    prior = ingest(tmp_path / "prior", write_shards(tmp_path / "in-old", old_texts, shards=2))
    with pytest.raises(MissingIndexError):
        cluster_table(ingest(tmp_path / "x", write_shards(tmp_path / "in-x", new_texts[:5], 1)),
                      DedupConfig(prior_runs=[str(prior.root)]), "documents")
    dedup_run(prior.root, DedupConfig())
    prior_files = {p: os.stat(p).st_mtime_ns for p in (prior.root / "dedup").rglob("*.parquet")}
    prior_result = by_url(prior)

    # the new run: the remaining corpus plus exact re-ingests of one prior shard's documents
    new_inputs = write_shards(tmp_path / "in-new", new_texts, shards=2, prefix="new")
    shutil.copy(tmp_path / "in-old" / "part-00.jsonl", new_inputs / "again.jsonl")
    new = ingest(tmp_path / "new", new_inputs)
    config = DedupConfig(prior_runs=[str(prior.root)])
    result = dedup_run(new.root, config)
    stats = result["tables"]["documents"]["minhash"]
    assert stats["duplicates_of_prior_runs"] > 0

    prior_ids = set(read_dir(prior.table_dir("documents")).column("doc_id").to_pylist())
    with open_catalog(new) as con:
        rows = con.execute("SELECT doc_id, minhash_is_duplicate, minhash_survivor_id, exact_is_duplicate, "
                           "exact_survivor_id FROM documents_scored").fetchall()
    # every re-ingested prior document is an exact and near duplicate of a document of the prior run
    # (itself, or a lower doc_id that it duplicated there)
    again = [r for r in rows if r[0] in prior_ids]
    assert len(again) == 75 and all(r[1] and r[3] and r[2] in prior_ids and r[4] in prior_ids for r in again)
    assert any(r[2] == r[0] for r in again)
    clusters = read_dir(new.root / "dedup" / "clusters").to_pylist()
    prior_members = [c for c in clusters if c["prior_run"] is not None]
    assert prior_members and {c["prior_run"] for c in prior_members} == {str(prior.root)}
    by_cluster: dict = {}
    for c in clusters:
        by_cluster.setdefault(c["cluster_id"], []).append(c)
    for members in by_cluster.values():
        kept = [m for m in members if not m["is_duplicate"]]
        assert len(kept) == 1
        if any(m["prior_run"] for m in members):  # a prior run's document always survives
            assert kept[0]["prior_run"] == str(prior.root) and kept[0]["survivor_prior_run"] == str(prior.root)
    # variants in the new run of base documents in the prior run are duplicates with a prior survivor
    of_prior = [c for c in clusters if c["prior_run"] is None and c["survivor_prior_run"] is not None
                and c["doc_id"] not in prior_ids]
    assert of_prior
    # the prior run's index was read, not rewritten, and its own results are unchanged
    assert {p: os.stat(p).st_mtime_ns for p in (prior.root / "dedup").rglob("*.parquet")} == prior_files
    assert by_url(prior) == prior_result

    # verification reads the prior run's texts too; it drops edges, never adds clusters
    verified = dedup_run(new.root, DedupConfig(prior_runs=[str(prior.root)], verify=True))["tables"]["documents"]
    assert 0 < verified["minhash"]["duplicates_of_prior_runs"] <= stats["duplicates_of_prior_runs"]
    assert verified["verify"]["edges_unverifiable"] == 0 and verified["verify"]["edges_dropped"] > 0

    with pytest.raises(IncompatibleIndexError, match="num_perm"):
        cluster_table(new, DedupConfig(prior_runs=[str(prior.root)], num_perm=128), "documents")

    # the index is its own files: deleting the prior run's documents leaves it usable
    cluster_table(new, config, "documents")
    before = read_dir(new.root / "dedup" / "clusters")
    shutil.rmtree(prior.table_dir("documents"))
    clusters_path(new, "documents").unlink()
    cluster_table(new, config, "documents")
    assert read_dir(new.root / "dedup" / "clusters").equals(before)


def test_documents_and_instructions_are_deduplicated_separately(corpus, sample_data, tmp_path):
    records = json.loads((sample_data / "alpaca_sample.json").read_text(encoding="utf-8"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "alpaca-a.json").write_text(json.dumps(records[:80]))
    (inputs / "alpaca-b.json").write_text(json.dumps(records[40:120]))  # 40 records in both files
    run = ingest(tmp_path / "run", write_shards(tmp_path / "docs", corpus[:60], shards=1))
    spec = InputSpec(paths=[str(inputs)], format="alpaca")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
    result = dedup_run(run.root, DedupConfig())
    assert set(result["tables"]) == {"documents", "instructions"}
    instructions = result["tables"]["instructions"]
    assert instructions["documents"] == 160 and instructions["exact"]["duplicates"] == 40
    assert instructions["minhash"]["duplicates"] >= 40
    docs_ids = set(read_dir(run.table_dir("documents")).column("doc_id").to_pylist())
    instruction_clusters = pq.read_table(clusters_path(run, "instructions")).column("doc_id").to_pylist()
    assert instruction_clusters and not docs_ids & set(instruction_clusters)
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*), sum(exact_is_duplicate::INT) FROM instructions_scored").fetchall() == [
            (160, 40)]
