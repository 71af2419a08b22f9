"""Before training: equal budgets, eval rows kept out of training, the overlap check that refuses to
measure memorisation, and errors that name what is wrong."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from tests.dsir.mixture import wiki_chunks, write_jsonl
from tests.eval.conftest import small_config
from thresher.eval.config import EvalSetSpec
from thresher.eval.data import EvalDataError, arm_path, load_tokens
from thresher.eval.overlap import EvalOverlapError
from thresher.eval.plan import plan_eval
from thresher.storage.run_dir import RunDir


@pytest.fixture
def run(wiki_web, tmp_path):
    source, _ = wiki_web
    return RunDir(shutil.copytree(source.root, tmp_path / "run"))


def _docs(run, arm, seed, name="wiki"):
    return pq.read_table(arm_path(run, name, arm, seed).with_suffix(".docs.parquet"))["doc_id"].to_pylist()


def test_every_arm_gets_exactly_the_budget(run, wiki_web):
    _, heldout = wiki_web
    plan = plan_eval(run, small_config(heldout, tokens=5_000))
    assert plan["budget_tokens"] == 5_000
    for arm in ("dsir-top", "dsir-tail", "random"):
        for seed in (0, 1, 2):
            assert load_tokens(arm_path(run, "wiki", arm, seed)).size == 5_000
    # A larger-than-budget selection contributes a seeded random part of itself.
    assert _docs(run, "dsir-tail", 0) != _docs(run, "dsir-tail", 1)
    again = plan_eval(run, small_config(heldout, tokens=5_000))
    assert again["arms"] == plan["arms"]  # same seed, same tokens: deterministic


def test_an_eval_set_that_overlaps_training_is_refused_or_warned(run, wiki_web, sample_data, tmp_path, caplog):
    _, heldout = wiki_web
    # Three Wikipedia chunks the DSIR selection holds, lightly edited (lowercased, commas dropped), plus held-out text.
    from thresher.storage.catalog import open_catalog

    with open_catalog(run) as con:
        pool_text = [t for (t,) in con.execute("SELECT text FROM documents JOIN selections_dsir_top USING (doc_id) "
                                               "WHERE source LIKE '%wiki%' ORDER BY doc_id LIMIT 3").fetchall()]
    leaked = write_jsonl(tmp_path / "leaked.jsonl", [t.lower().replace(",", "") for t in pool_text[:3]]
                         + wiki_chunks(sample_data, range(10, 12)))
    config = small_config(heldout, eval_sets=[EvalSetSpec(name="leaky", paths=[str(leaked)])])
    with pytest.raises(EvalOverlapError, match=r"(?s)evaluation sets overlap training data.*dsir-top seed 0 / leaky"):
        plan_eval(run, config)
    warned = plan_eval(run, config.model_copy(update={"on_overlap": "warn"}))
    assert any(k.startswith("dsir-top seed 0 / leaky") for k in warned["overlap"])
    assert "EVAL SETS OVERLAP TRAINING DATA" in caplog.text
    # The held-out articles share nothing with the pool: no finding.
    assert not plan_eval(run, small_config(heldout))["overlap"]


def test_rows_an_sql_eval_set_takes_never_reach_an_arm(run, wiki_web):
    _, heldout = wiki_web
    sql = "SELECT doc_id, text FROM documents WHERE source LIKE '%wiki%' AND md5(doc_id) < '8'"
    config = small_config(heldout, tokens=5_000, eval_sets=[EvalSetSpec(name="inside", sql=sql)])
    plan = plan_eval(run, config)
    from thresher.storage.catalog import open_catalog

    with open_catalog(run) as con:
        held = {d for (d,) in con.execute(sql.replace("doc_id, text", "doc_id")).fetchall()}
    assert plan["eval_sets"]["inside"]["rows_left_out_of_training"] == len(held) > 10
    for arm in ("dsir-top", "dsir-tail", "random"):
        for seed in (0, 1, 2):
            assert not held & set(_docs(run, arm, seed))


def test_errors_name_the_problem(run, wiki_web):
    _, heldout = wiki_web
    with pytest.raises(EvalDataError, match="no selection 'nope'"):
        plan_eval(run, small_config(heldout, selections=["nope"]))
    with pytest.raises(EvalDataError, match=r"fewer than the 10,000,000 training tokens asked for: dsir-top"):
        plan_eval(run, small_config(heldout, tokens=10_000_000, max_tokens=20_000_000))
    with pytest.raises(EvalDataError, match="must return a `text` column"):
        plan_eval(run, small_config(heldout, eval_sets=[EvalSetSpec(name="x", sql="SELECT doc_id FROM documents")]))
    with pytest.raises(EvalDataError, match="its sql failed"):
        plan_eval(run, small_config(heldout, eval_sets=[EvalSetSpec(name="x", sql="SELECT text FROM nowhere")]))
