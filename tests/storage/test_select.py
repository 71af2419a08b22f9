import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tests.storage.test_catalog import run  # noqa: F401  (fixture: two shards, toy@1/toy@2 scores)
from thresher.config import SelectionRecipe, SelectionStep
from thresher.storage.catalog import open_catalog
from thresher.storage.select import SelectionError, run_selection, selection_dir


def recipe(**kwargs) -> SelectionRecipe:
    return SelectionRecipe(name="short", **kwargs)


def test_funnel_counts_each_step_cumulatively(run):  # noqa: F811
    result = run_selection(run, recipe(where=[SelectionStep(name="long", sql="toy_len > 3"),
                                              SelectionStep(name="shouty", sql="toy_upper > 0")]))
    assert [(s["step"], s["rows"]) for s in result["funnel"]] == [("all", 3), ("long", 2), ("shouty", 1)]
    assert result["selected_rows"] == 1
    table = pq.read_table(selection_dir(run, "short") / "selected.parquet")
    assert table.column_names == ["doc_id", "rank"] and table.num_rows == 1


def test_same_recipe_gives_byte_identical_selection(run):  # noqa: F811
    spec = recipe(where=[SelectionStep(name="any", sql="toy_len > 0")])
    run_selection(run, spec)
    first = (selection_dir(run, "short") / "selected.parquet").read_bytes()
    meta = (selection_dir(run, "short") / "selection.json").read_bytes()
    run_selection(run, spec)
    assert (selection_dir(run, "short") / "selected.parquet").read_bytes() == first
    assert (selection_dir(run, "short") / "selection.json").read_bytes() == meta


def test_limit_ranks_by_order_by_then_doc_id(run):  # noqa: F811
    run_selection(run, recipe(limit=2, order_by="toy_len DESC"))
    table = pq.read_table(selection_dir(run, "short") / "selected.parquet").to_pydict()
    assert sorted(table["rank"]) == [1, 2]
    with pytest.raises(ValidationError, match="greater than 0"):
        SelectionRecipe(name="x", limit=0)


def test_order_by_without_limit_still_ranks_every_row(run):  # noqa: F811
    """Issue 16: order_by without limit used to leave every rank NULL."""
    run_selection(run, recipe(order_by="toy_len DESC"))
    table = pq.read_table(selection_dir(run, "short") / "selected.parquet").to_pydict()
    with open_catalog(run) as con:
        lengths = dict(con.execute("SELECT doc_id, toy_len FROM documents_scored").fetchall())
    by_rank = [doc for _rank, doc in sorted(zip(table["rank"], table["doc_id"]))]
    assert sorted(table["rank"]) == list(range(1, len(table["doc_id"]) + 1))
    assert [lengths[d] for d in by_rank] == sorted(lengths[d] for d in by_rank)[::-1]


def test_bad_predicate_names_its_step(run):  # noqa: F811
    with pytest.raises(SelectionError, match="step 'typo'.*no_such_column"):
        run_selection(run, recipe(where=[SelectionStep(name="typo", sql="no_such_column > 1")]))


def test_a_predicate_cannot_smuggle_a_statement(run):  # noqa: F811
    evil = SelectionStep(name="evil", sql="TRUE); DROP VIEW documents; SELECT (1")
    with pytest.raises(SelectionError, match="single SQL expression"):
        run_selection(run, recipe(where=[evil]))


def test_missing_table_is_explained(run):  # noqa: F811
    with pytest.raises(SelectionError, match="instructions_scored"):
        run_selection(run, SelectionRecipe(name="x", table="instructions"))
