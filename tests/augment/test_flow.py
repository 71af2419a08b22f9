"""The augment flows and the `thresher augment` CLI under the session's Prefect API, on copies of
the conftest run (every batch resumes from its checkpoint, so no evolution is generated again);
the loop then judges, deduplicates against the source pool and selects the evolved pairs for real."""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tests.augment.conftest import CONFIG
from thresher.config import ScorerSpec, SelectionRecipe, SelectionStep
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_for_cli", "fake_lm")

# What thresher/storage/catalog.py gains with the augment stage (see the integration notes).
AUGMENT_STAGE_DIR = "augment"
AUGMENT_VIEWS = "thresher.augment.report:catalog_views"


@pytest.fixture
def augment_catalog(monkeypatch):
    from thresher.storage import catalog

    monkeypatch.setattr(catalog, "STAGE_TABLE_DIRS", tuple(dict.fromkeys((*catalog.STAGE_TABLE_DIRS,
                                                                           AUGMENT_STAGE_DIR))))
    monkeypatch.setattr(catalog, "DERIVED_VIEW_PROVIDERS", list(dict.fromkeys((*catalog.DERIVED_VIEW_PROVIDERS,
                                                                                AUGMENT_VIEWS))))


@pytest.fixture
def source_copy(evolved, alpaca_source, tmp_path) -> RunDir:
    """The source run with its augmented run inside (<source>/augment/evol/), copied."""
    target = tmp_path / "source"
    shutil.copytree(alpaca_source.root, target)
    return RunDir(target)


def test_augment_loop_flow_judges_dedups_selects_and_is_queryable(evolved, source_copy, augment_catalog):
    from prefect.artifacts import Artifact

    from thresher.dedup.config import DedupConfig
    from thresher.flows.augment import augment_loop_flow

    judge = ScorerSpec(name="judge_alpagasus", params={"backend": "fake", "model": "augment-loop",
                                                       "max_input_tokens": 48})
    keep = SelectionRecipe(name="evolved", table="instructions", where=[
        SelectionStep(name="not_near_duplicate", sql="NOT minhash_is_duplicate"),
        SelectionStep(name="judged", sql="judge_alpagasus_score IS NOT NULL")])
    result = augment_loop_flow(str(source_copy.root), CONFIG, [judge], DedupConfig(), [keep])
    augmented = result["augment"]
    survived = evolved["survived"]
    assert (augmented["attempts"], augmented["survived"]) == (16, survived)
    assert (augmented["attempts_generated"], augmented["batches_reused"]) == (0, 4)
    out = RunDir(result["output_run"])
    assert out.root == source_copy.root / "augment" / "evol"

    # Judged, deduplicated against the source pool (whose dedup index the loop built first), selected.
    assert result["judge"]["judges"][0]["rows"] == survived
    assert result["source_dedup"] is not None and source_copy.read_manifest()["stages"]["dedup"]["status"] == "finished"
    table = result["dedup"]["tables"]["instructions"]
    assert table["documents"] == survived and "duplicates_of_prior_runs" in table
    assert out.read_manifest()["stages"]["dedup"]["prior_runs"] == [str(source_copy.root)]
    selection = result["selections"][0]
    assert selection["name"] == "evolved" and selection["funnel"][0]["rows"] == survived
    # minhash_duplicates counts this run's duplicates, of the source pool (a prior run's row always
    # survives) or of each other.
    assert selection["selected_rows"] == survived - table["minhash_duplicates"]

    # Lineage and elimination reasons are queryable with SQL.
    with open_catalog(out) as con:
        reasons = dict(con.execute("SELECT coalesce(elimination_reason, 'survived'), count(*) "
                                   "FROM augment_attempts GROUP BY ALL").fetchall())
        assert sum(reasons.values()) == 16 and reasons.get("survived", 0) == survived
        assert con.execute("SELECT sum(attempts), sum(survived) FROM augment_survival").fetchall() == [(16, survived)]
        joined = con.execute(
            "SELECT count(*), count(judge_alpagasus_score) FROM instructions_scored s "
            "JOIN augment_lineage l USING (doc_id) JOIN augment_seeds r ON r.root_id = l.root_id").fetchall()
        assert joined == [(survived, survived)]
        assert con.execute("SELECT count(*) FROM instructions WHERE json_extract_string(meta_json, "
                           "'$.augment.operation') IS NOT NULL").fetchall() == [(survived,)]
    from thresher.cli import app as thresher_app

    sql = CliRunner().invoke(thresher_app, ["sql", str(out.root), "SELECT round, operation, attempts, survived "
                                            "FROM augment_survival ORDER BY ALL", "-o", "csv"])
    assert sql.exit_code == 0, sql.output
    assert sql.output.splitlines()[0] == "round,operation,attempts,survived"

    for suffix in ("survival", "eliminations", "summary"):
        artifact = Artifact.get(f"{source_copy.root.name}-augment-evol-{suffix}")
        assert artifact is not None, suffix
    summary = Artifact.get(f"{source_copy.root.name}-augment-evol-summary")
    assert "no_information_gain" in summary.data and "Survival by round and operation" in summary.data


def test_cli(evolved, source_copy, tmp_path):
    from thresher.cli.augment import app

    config_file = tmp_path / "augment.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG.model_dump(mode="json")))
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(source_copy.root), "--config", str(config_file)])
    assert ran.exit_code == 0, ran.output
    assert "augment rounds" in ran.output and "eliminations" in ran.output
    out = source_copy.root / "augment" / "evol"
    assert str(out) in ran.output.replace("\n", "")

    stats = runner.invoke(app, ["stats", str(out)])
    assert stats.exit_code == 0 and "survival by round and operation" in stats.output
    assert "no_information_gain" in stats.output

    data = RunDir(out).table_dir("instructions")
    import pyarrow.parquet as pq

    doc_id = pq.read_table(sorted(data.glob("part-*.parquet"))[-1], columns=["doc_id"]).column("doc_id")[0].as_py()
    chain = runner.invoke(app, ["lineage", str(out), doc_id])
    assert chain.exit_code == 0, chain.output
    assert "seed" in chain.output

    listed = runner.invoke(app, ["prompts"])
    assert listed.exit_code == 0 and "complicate_input" in listed.output and "equality" in listed.output

    missing = runner.invoke(app, ["run", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a thresher run directory" in missing.output
    bad = runner.invoke(app, ["run", str(source_copy.root), "--rounds", "0"])
    assert bad.exit_code == 2 and "rounds" in bad.output
