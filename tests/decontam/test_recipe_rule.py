"""The recipe rule `decontamination:`: the recipe as loaded scores decontam@1 and starts every
selection with `decontaminated`; `thresher validate` knows the new columns; a real curate drops the
contaminated rows before any selection and its funnel says so."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml

from tests.decontam.data import c4_pages, questions, write_jsonl
from thresher.config import Recipe

CONTAMINATED = (0, 7, 14, 21, 28)


def _raw(tmp_path, bench, **extra) -> dict:
    return {"name": "decon", "run_dir": str(tmp_path / "run"), "inputs": [{"paths": [str(tmp_path / "pages.jsonl")]}],
            "scorers": [{"name": "heuristics"}],
            "decontamination": {"benchmarks": [{"name": "alpaca", "paths": [str(bench)], "fields": ["question"]}],
                                "cache_dir": str(tmp_path / "cache")},
            "selections": [{"name": "long", "where": [{"name": "words", "sql": "gopher_word_count >= 50"}]},
                           {"name": "everything"}],
            **extra}


@pytest.fixture
def corpus(tmp_path, sample_data):
    """35 C4 pages; five of them carry a benchmark question in the middle."""
    items = questions(sample_data)
    bench = write_jsonl(tmp_path / "alpaca.jsonl", items)
    pages = c4_pages(sample_data)[:35]
    for i in CONTAMINATED:
        half = len(pages[i]) // 2
        pages[i] = pages[i][:half] + " " + items[i]["question"] + " " + pages[i][half:]
    write_jsonl(tmp_path / "pages.jsonl", [{"text": p} for p in pages])
    return bench


def test_the_rule_adds_the_scorer_and_a_first_step_once(tmp_path, corpus):
    recipe = Recipe.model_validate(_raw(tmp_path, corpus))
    assert [s.name for s in recipe.scorers] == ["heuristics", "decontam"]
    assert [[step.name for step in s.where] for s in recipe.selections] == [["decontaminated", "words"],
                                                                            ["decontaminated"]]
    assert recipe.selections[0].where[0].sql == "decontam_overlap <= 0"
    again = Recipe.model_validate(recipe.model_dump(mode="json"))  # run.json's recipe loads to itself
    assert again == recipe and again.content_hash() == recipe.content_hash()
    without = Recipe.model_validate({k: v for k, v in _raw(tmp_path, corpus).items() if k != "decontamination"})
    assert [s.name for s in without.scorers] == ["heuristics"] and without.selections[1].where == []


def test_the_rule_reaches_dsir_and_diversity_selections(tmp_path, corpus):
    raw = _raw(tmp_path, corpus, dsir={"targets": [{"name": "t", "inputs": [{"paths": [str(corpus)]}]}],
                                       "selection": {"name": "dsir", "k": 5, "where": "gopher_word_count > 10"}})
    raw["embeddings"] = {"diversity": [{"name": "div", "k": 3}, {"name": "div2", "k": 3, "where": "x > 1"}]}
    raw["decontamination"]["max_overlap"] = 2
    recipe = Recipe.model_validate(raw)
    assert recipe.dsir.selection.where == "(decontam_overlap <= 2) AND (gopher_word_count > 10)"
    assert [d.where for d in recipe.embeddings.diversity] == ["decontam_overlap <= 2",
                                                              "(decontam_overlap <= 2) AND (x > 1)"]
    again = Recipe.model_validate(recipe.model_dump(mode="json"))
    assert again.dsir == recipe.dsir and again.embeddings == recipe.embeddings


def test_conflicting_declarations_are_refused(tmp_path, corpus):
    raw = _raw(tmp_path, corpus)
    raw["scorers"].append({"name": "decontam", "params": {"benchmarks": [str(corpus)]}})
    with pytest.raises(ValueError, match="decontam scorer is also listed"):
        Recipe.model_validate(raw)
    raw = _raw(tmp_path, corpus)
    raw["selections"][0]["where"].insert(0, {"name": "decontaminated", "sql": "TRUE"})
    with pytest.raises(ValueError, match="rename it"):
        Recipe.model_validate(raw)


def test_validate_knows_the_new_columns(tmp_path, corpus):
    from thresher.cli.validate import check_recipe

    raw = _raw(tmp_path, corpus)
    raw["selections"][1]["where"] = [{"name": "cov", "sql": "decontam_coverage < 0.5 OR decontam_benchmark IS NULL"}]
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    problems, summary = check_recipe(tmp_path / "good.yaml", [])
    assert problems == [] and summary
    raw["selections"][1]["where"][0]["sql"] = "decontam_overlaps = 0"
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    problems, _ = check_recipe(tmp_path / "typo.yaml", [])
    assert len(problems) == 1 and "decontam_overlaps" in problems[0]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # validate writes nothing


@pytest.mark.usefixtures("prefect_harness")
def test_curate_drops_contaminated_rows_before_every_selection(tmp_path, corpus):
    from thresher.flows.curate import curate_flow
    from thresher.storage.catalog import open_catalog
    from thresher.storage.run_dir import RunDir

    recipe = Recipe.model_validate(_raw(tmp_path, corpus))
    curate_flow(recipe)
    run = RunDir(recipe.run_dir)
    with open_catalog(run) as con:
        flagged = con.execute("SELECT source_row, decontam_overlap, decontam_benchmark FROM documents_scored "
                              "WHERE decontam_overlap > 0 ORDER BY source_row").fetchall()
        contaminated_ids = {r[0] for r in con.execute("SELECT doc_id FROM documents_scored WHERE decontam_overlap > 0")
                            .fetchall()}
    assert [r[0] for r in flagged] == list(CONTAMINATED)
    assert all(r[1] >= 3 and r[2] == "alpaca" for r in flagged)
    for name in ("long", "everything"):
        meta = json.loads((run.root / "selections" / name / "selection.json").read_text(encoding="utf-8"))
        funnel = meta["funnel"]
        assert funnel[0] == {"step": "all", "sql": "", "rows": 35}
        assert funnel[1] == {"step": "decontaminated", "sql": "decontam_overlap <= 0", "rows": 30}
        selected = set(pq.read_table(run.root / "selections" / name / "selected.parquet").column("doc_id").to_pylist())
        assert selected and not selected & contaminated_ids and len(selected) == funnel[-1]["rows"]
