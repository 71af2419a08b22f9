"""Train-and-compare end to end under Prefect, on real text: a DSIR selection toward Wikipedia beats
random on held-out Wikipedia loss over three seeds, the anti-DSIR selection loses to it, and the
answer lands in the run (tables, catalog views, plot, run.json) and is served from the cache on a
re-run."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.eval.conftest import small_config
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_for_cli")


@pytest.fixture(scope="module")
def compared(wiki_web, tmp_path_factory):
    from thresher.flows.eval import eval_flow

    source, heldout = wiki_web
    run = RunDir(shutil.copytree(source.root, tmp_path_factory.mktemp("compared") / "run"))
    result = eval_flow(str(run.root), [small_config(heldout)])
    return run, heldout, result


def _summary(report: dict) -> dict[str, dict]:
    return {row["selection"]: row for row in report["summary"] if row["measure"] == "wiki_heldout"}


def test_dsir_selection_beats_random_and_the_anti_selection_loses(compared):
    _, _, result = compared
    (report,) = result["evals"]
    summary = _summary(report)
    top, bottom = summary["dsir-top"], summary["dsir-tail"]
    # Every seed, and by more than twice the standard error of the difference over seeds.
    assert top["seeds"] == 3 and top["seeds_better"] == 3, top
    assert top["verdict"] == "better than random" and top["gain"] > 2 * top["gain_stderr"] > 0, top
    assert bottom["seeds_better"] == 0 and bottom["verdict"] == "worse than random", bottom
    assert top["mean"] < top["random_mean"] < bottom["mean"]
    assert top["std"] > 0 and top["random_std"] > 0  # the spread over seeds is reported, not assumed


def test_every_arm_trains_on_the_same_budget_and_the_results_land_in_the_run(compared):
    run, _, result = compared
    (report,) = result["evals"]
    plan = json.loads((run.root / "eval/runs/wiki/plan.json").read_text())
    assert plan["budget_tokens"] == min(plan["selection_tokens"].values())
    assert set(plan["arms"]) == {"dsir-top", "dsir-tail", "random"}
    assert not plan["overlap"]
    with open_catalog(run) as con:
        rows = con.execute("SELECT arm, count(*), min(train_tokens), max(train_tokens), min(tokens_seen), "
                           "max(tokens_seen) FROM eval_results GROUP BY arm ORDER BY arm").fetchall()
        assert [r[0] for r in rows] == ["dsir-tail", "dsir-top", "random"]
        assert all(r[1] == 3 and r[2] == r[3] == plan["budget_tokens"] and r[4] == r[5] for r in rows)
        verdicts = dict(con.execute("SELECT selection, verdict FROM eval_summary").fetchall())
        assert verdicts == {"dsir-top": "better than random", "dsir-tail": "worse than random"}
        steps = con.execute("SELECT DISTINCT step FROM eval_curves ORDER BY step").fetchall()
        assert [s for (s,) in steps] == [50, 100, 150, 200]
    # The random arm's documents differ per seed (a new sample), a selection's are the same documents.
    import pyarrow.parquet as pq

    def docs(arm, seed):
        return set(pq.read_table(run.root / f"eval/runs/wiki/data/{arm}/seed-{seed}.docs.parquet")["doc_id"]
                   .to_pylist())
    assert docs("random", 0) != docs("random", 1)
    assert docs("dsir-top", 0) == docs("dsir-top", 1)
    model = run.root / "eval/runs/wiki/models/dsir-top/seed-0/model"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert (run.root / report["plot"]).stat().st_size > 100_000  # self-contained plotly page
    manifest = run.read_manifest()
    assert manifest["stages"]["eval"]["status"] == "finished"


def test_a_rerun_is_served_from_the_finished_models(compared):
    from thresher.flows.eval import eval_flow

    run, heldout, result = compared
    again = eval_flow(str(run.root), [small_config(heldout)])
    assert _summary(again["evals"][0]) == _summary(result["evals"][0])
    assert again["evals"][0]["train_seconds"] == 0  # nothing retrained


def test_the_dashboard_shows_the_comparison(compared):
    from fastapi.testclient import TestClient

    from thresher.dashboards.app import create_app

    run, _, _ = compared
    page = TestClient(create_app(run)).get("/eval")
    assert page.status_code == 200
    assert "better than random" in page.text and "worse than random" in page.text
    assert "<code>dsir-top</code>" in page.text and "loss on wiki_heldout" in page.text
