"""The embedding flows under Prefect: end to end on a run made by thresher's ingest flow, caching and
recovery, artifacts, catalog views, and the `thresher embeddings` commands."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from thresher.cli.embeddings import app
from thresher.config import InputSpec
from thresher.embeddings.config import (
    DistillConfig,
    DiversitySelection,
    EmbedConfig,
    EmbeddingsConfig,
    SemDedupConfig,
    load_embeddings_config,
)
from thresher.flows.artifacts import artifact_key
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_for_cli")
runner = CliRunner()


def test_embeddings_flow_end_to_end(embedded_run, planted, embed_config, tmp_path):
    from prefect.artifacts import Artifact

    from thresher.flows.embeddings import embeddings_flow

    run_dir = tmp_path / "copy"
    shutil.copytree(embedded_run.root, run_dir)  # a run directory works wherever it is
    config = EmbeddingsConfig(
        embed=embed_config,
        semdedup=SemDedupConfig(),
        distill=[DistillConfig(target="fineweb_list_ratio", table="instructions", sample=500)],
        diversity=[DiversitySelection(name="diverse", k=150, where="NOT semdedup_is_duplicate",
                                      score_sql="distilled_fineweb_list_ratio_score")],
    )
    result = embeddings_flow(str(run_dir), config)
    run = RunDir(run_dir)
    embed = result["embed"]
    # the embeddings were already there under the same cache key: nothing is embedded again
    assert (embed["shards"], embed["shards_skipped"], embed["rows"], embed["backend"]) == (2, 2, 792, "onnx")
    semdedup = result["semdedup"]["instructions"]
    assert semdedup["groups"]["duplicates"] >= 30 and not semdedup["skipped"]
    (distilled,) = result["distill"]
    assert distilled["scored_rows"] == 792 and distilled["score_column"] == "distilled_fineweb_list_ratio_score"
    (selection,) = result["diversity"]
    assert selection["selected_rows"] == 150
    with open_catalog(run) as con:
        views = {name for (name,) in con.execute("SELECT name FROM thresher_views").fetchall()}
        assert {"score_embed", "score_semdedup", "score_distilled_fineweb_list_ratio", "selections_diverse"} <= views
        duplicates_selected, best = con.execute("""
            SELECT count(*) FILTER (WHERE semdedup_is_duplicate), min(distilled_fineweb_list_ratio_score)
            FROM instructions_scored WHERE doc_id IN (SELECT doc_id FROM selections_diverse)""").fetchall()[0]
        median = con.execute("SELECT median(distilled_fineweb_list_ratio_score) FROM instructions_scored"
                             ).fetchall()[0][0]
    assert duplicates_selected == 0 and best > median  # the best-scored, never a semantic duplicate
    stages = run.read_manifest()["stages"]
    assert stages["embeddings"]["status"] == "finished" and stages["embed"]["config"]["max_seq_length"] == 128
    for key in (artifact_key(run.root.name, "embed"), artifact_key(run.root.name, "semdedup-summary"),
                artifact_key(run.root.name, "distill", "fineweb_list_ratio"),
                artifact_key(run.root.name, "diversity", "diverse")):
        assert Artifact.get(key) is not None, key
    report = Artifact.get(artifact_key(run.root.name, "distill", "fineweb_list_ratio")).data
    assert "| heldout |" in report
    histogram = Artifact.get(artifact_key(run.root.name, "semdedup-summary")).data
    assert "0.95-1.00" in histogram

    # again: semdedup and the distilled scores come from the cache; the same selection is made
    again = embeddings_flow(str(run_dir), config)
    assert again["semdedup"]["instructions"]["skipped"]
    assert again["distill"][0]["head_hash"] == distilled["head_hash"]
    assert again["diversity"][0]["selected_rows"] == 150


def test_embed_flow_caches_recovers_and_cli(sample_data, tmp_path):
    from thresher.flows.embeddings import embed_flow
    from thresher.flows.ingest import ingest_flow

    records = json.loads((sample_data / "alpaca_sample.json").read_text())[:60]
    records += [dict(r, output=r["output"] + " ") for r in records[:5]]  # five near-copies
    source = tmp_path / "small.json"
    source.write_text(json.dumps(records))
    run_dir = str(tmp_path / "run")
    ingest_flow(run_dir, [InputSpec(paths=[str(source)], format="alpaca")], seed=2)
    config = EmbedConfig(max_seq_length=64, backend="onnx")
    first = embed_flow(run_dir, config)["embed"]
    assert (first["rows"], first["shards_skipped"]) == (65, 0) and first["rows_per_second"] > 0
    assert embed_flow(run_dir, config)["embed"]["shards_skipped"] == 1
    run = RunDir(run_dir)
    (sidecar,) = (run.root / "scores" / "embed@1").glob("part-*.parquet")
    sidecar.unlink()  # a cached shard whose sidecar is gone is embedded again
    assert embed_flow(run_dir, config)["embed"]["shards_skipped"] == 0 and sidecar.is_file()

    out = runner.invoke(app, ["embed", run_dir, "--max-seq-length", "64", "--backend", "onnx"])
    assert out.exit_code == 0, out.output
    assert "embeddings" in out.output and "onnx" in out.output
    # the commands use the embeddings the run's last embed made (max_seq_length 64)
    out = runner.invoke(app, ["semdedup", run_dir, "--threshold", "0.97"])
    assert out.exit_code == 0, out.output
    assert "semantic dedup" in out.output
    with open_catalog(run) as con:
        assert con.execute("SELECT count(*) FROM score_semdedup WHERE semdedup_is_duplicate").fetchall() == [(5,)]
    out = runner.invoke(app, ["diversity", run_dir, "--name", "few", "-k", "10", "--method", "kcenter"])
    assert out.exit_code == 0, out.output
    assert pq.read_metadata(run.root / "selections" / "few" / "selected.parquet").num_rows == 10
    out = runner.invoke(app, ["distill", run_dir, "--target", "length(output)", "--name", "output_length",
                              "--table", "instructions"])
    assert out.exit_code == 0, out.output
    assert "distilled length(output)" in out.output and (run.root / "scores" / "distilled_output_length@1").is_dir()
    out = runner.invoke(app, ["diversity", run_dir, "--name", "bad", "--where", "nonsense_column > 1"])
    assert out.exit_code == 2 and "nonsense_column" in out.output

    # a YAML config runs every step
    yaml_path = tmp_path / "embeddings.yaml"
    yaml_path.write_text("embed: {max_seq_length: 64, backend: onnx}\nsemdedup: {threshold: 0.97}\n"
                         "diversity: [{name: top, k: 5}]\n")
    assert load_embeddings_config(yaml_path).diversity[0].k == 5
    out = runner.invoke(app, ["run", run_dir, "--config", str(yaml_path)])
    assert out.exit_code == 0, out.output
    assert "selection top" in out.output
    yaml_path.write_text("embed: {max_seq_lenght: 64}\n")
    out = runner.invoke(app, ["run", run_dir, "--config", str(yaml_path)])
    assert out.exit_code == 2 and "max_seq_lenght" in out.output
