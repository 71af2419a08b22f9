"""A flow that fails records it in run.json (issue 16: "failed stages stay `running`")."""

import pytest

from tests.storage.test_catalog import run  # noqa: F401
from thresher.config_base import SelectionRecipe, SelectionStep
from thresher.flows.select import select_flow
from thresher.storage.run_dir import RunDir
from thresher.storage.run_lock import LOCK_NAME, writer_lock


def test_a_failed_stage_is_recorded_as_failed_with_its_error(run, prefect_harness):  # noqa: F811
    bad = SelectionRecipe(name="bad", where=[SelectionStep(name="typo", sql="no_such_column > 1")])
    with pytest.raises(Exception, match="no_such_column"):
        select_flow(str(run.root), [bad])
    stage = RunDir(run.root).read_manifest()["stages"]["select"]
    assert stage["status"] == "failed" and "no_such_column" in stage["error"] and stage["failed_at"]
    # the lock went with the failed flow
    with writer_lock(run.root):
        assert (run.root / LOCK_NAME).read_text()
    good = SelectionRecipe(name="all")
    select_flow(str(run.root), [good])
    assert RunDir(run.root).read_manifest()["stages"]["select"]["status"] == "finished"
