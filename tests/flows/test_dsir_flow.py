"""The DSIR flows end to end under Prefect, their caching, the catalog views, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.dsir.mixture import build_pool, build_targets
from thresher.config import InputSpec
from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
from thresher.flows.artifacts import artifact_key
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_for_cli")
runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(sample_data, tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("dsir-flow")
    pool = build_pool(sample_data, directory / "pool", wiki_docs=60)
    return {**pool, **{f"target_{k}": v for k, v in build_targets(sample_data, directory / "targets").items()},
            "dir": directory}


def _ingest(inputs, name: str) -> str:
    from thresher.flows.ingest import ingest_flow

    run_dir = inputs["dir"] / name
    ingest_flow(str(run_dir), [InputSpec(paths=[str(inputs["c4"]), str(inputs["wiki"])], format="jsonl")], seed=5)
    return str(run_dir)


def _selected(run: RunDir, name: str):
    return pq.read_table(run.root / "selections" / name / "selected.parquet")


def test_dsir_flow_end_to_end_rerun_and_resume(inputs):
    from prefect.artifacts import Artifact

    from thresher.flows.dsir import dsir_flow

    run_dir = _ingest(inputs, "run")
    config = DsirConfig(
        targets=[DsirTarget(name="wiki", inputs=[InputSpec(paths=[str(inputs["target_wiki"])])])],
        selection=DsirSelection(name="wiki_like", k=40),
    )
    first = dsir_flow(run_dir, config)
    run = RunDir(run_dir)
    fit_hash = first["fit"]["fit_hash"]
    assert not first["fit"]["skipped"] and first["fit"]["stats"]["raw"]["docs"] == 260
    assert (first["weights"]["shards"], first["weights"]["shards_skipped"], first["weights"]["rows"]) == (2, 0, 260)
    meta = first["selection"]
    assert meta["selected_rows"] == 40 and meta["seed"] == 5 and meta["fit_hash"] == fit_hash
    (report,) = first["report"]["targets"]
    assert report["kl_target_selected"] < report["kl_target_random"]

    stage = run.read_manifest()["stages"]["dsir"]
    assert stage["status"] == "finished" and stage["fit_hash"] == fit_hash
    assert stage["selection"]["selected_rows"] == 40
    with open_catalog(run) as con:
        views = {name for (name,) in con.execute("SELECT name FROM thresher_views").fetchall()}
        assert {"score_dsir", "score_dsir_v1", "selections_wiki_like", "dsir_fits", "dsir_baselines"} <= views
        share = con.execute(
            "SELECT avg((source = 'wiki.jsonl')::INT) FILTER (WHERE doc_id IN (SELECT doc_id FROM "
            "selections_wiki_like)), avg((source = 'wiki.jsonl')::INT) FILTER (WHERE dsir_num_tokens >= 100) "
            "FROM documents_scored"
        ).fetchall()[0]
        assert share[0] > 0.6 > 0.3 > share[1]
        assert con.execute("SELECT count(*) FROM dsir_fits WHERE fit_hash = $h",
                           {"h": fit_hash}).fetchall() == [(20_000,)]
    artifact = Artifact.get(artifact_key(run.root.name, "dsir", "wiki_like", "report"))
    assert artifact is not None and "KL(target‖selected)" in artifact.data
    selection_json = json.loads((run.root / "selections/wiki_like/selection.json").read_text())
    assert selection_json["fit_hash"] == fit_hash and selection_json["k"] == 40

    # Run again: the fit and every shard's weights come from the cache; the selection is the same.
    second = dsir_flow(run_dir, config)
    assert second["fit"]["skipped"] and second["fit"]["fit_hash"] == fit_hash
    assert second["weights"]["shards_skipped"] == second["weights"]["shards"] == 2
    before = _selected(run, "wiki_like")
    assert before.equals(_selected(RunDir(run_dir), "wiki_like"))

    # Delete one shard's weights and the fit file: only they are recomputed, to the same result.
    victim = sorted((run.root / "scores" / "dsir@1").glob("part-*.parquet"))[0]
    weights_before = pq.read_table(victim)
    victim.unlink()
    (run.root / "dsir" / "fits" / f"{fit_hash}.parquet").unlink()
    third = dsir_flow(run_dir, config)
    assert not third["fit"]["skipped"] and third["fit"]["fit_hash"] == fit_hash
    assert third["weights"]["shards_skipped"] == 1
    assert pq.read_table(victim).equals(weights_before)
    assert _selected(run, "wiki_like").equals(before)

    # A different fit re-weights every shard.
    fourth = dsir_flow(run_dir, config.model_copy(update={"num_buckets": 4096}))
    assert fourth["fit"]["fit_hash"] != fit_hash and fourth["weights"]["shards_skipped"] == 0


def test_cli_fit_weight_select(inputs, tmp_path):
    from thresher.cli.dsir import app

    run_dir = _ingest(inputs, "cli-run")

    fit = runner.invoke(app, ["fit", run_dir, "--target", f"wiki={inputs['target_wiki']}", "--buckets", "5000"])
    assert fit.exit_code == 0, fit.output
    assert "dsir fit" in fit.output and "target wiki" in fit.output

    weight = runner.invoke(app, ["weight", run_dir])
    assert weight.exit_code == 0, weight.output
    assert "dsir@1" in weight.output and "260" in weight.output

    select = runner.invoke(app, ["select", run_dir, "--name", "cli_pick", "-k", "12", "--seed", "3",
                                 "--where", "source = 'c4.jsonl'"])
    assert select.exit_code == 0, select.output
    assert "selection cli_pick" in select.output and "selections_cli_pick" in select.output
    with open_catalog(RunDir(run_dir)) as con:
        assert con.execute("SELECT DISTINCT source FROM documents JOIN selections_cli_pick USING (doc_id)"
                           ).fetchall() == [("c4.jsonl",)]

    config = tmp_path / "dsir.yaml"
    config.write_text("targets:\n  - name: wiki\n    sql: SELECT text FROM documents WHERE source = 'wiki.jsonl'\n"
                      "selection: {name: from_yaml, k: 7, method: top_k}\n", encoding="utf-8")
    assert runner.invoke(app, ["fit", run_dir, "--config", str(config)]).exit_code == 0
    assert runner.invoke(app, ["weight", run_dir]).exit_code == 0
    from_yaml = runner.invoke(app, ["select", run_dir, "--config", str(config)])
    assert from_yaml.exit_code == 0, from_yaml.output
    assert len(_selected(RunDir(run_dir), "from_yaml")) == 7

    missing = runner.invoke(app, ["select", run_dir, "-k", "3"])
    assert missing.exit_code == 2 and "--name" in missing.output
    bad = runner.invoke(app, ["fit", run_dir, "--target", "wiki"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
    first_fit = next(p.stem for p in (Path(run_dir) / "dsir" / "fits").glob("*.parquet")
                     if p.stem != json.loads((Path(run_dir) / "dsir" / "fit.json").read_text())["fit_hash"])
    stale = runner.invoke(app, ["select", run_dir, "--name", "old", "-k", "3", "--fit", first_fit])
    assert stale.exit_code == 2 and "lack weights" in stale.output
    unknown = runner.invoke(app, ["weight", run_dir, "--fit", "0123456789abcdef"])
    assert unknown.exit_code == 2 and "no DSIR fit 0123456789abcdef" in unknown.output
