"""The curate flow on other task runners gives the same tables as on threads."""

import pytest

from tests.flows.runs import read_outputs, recipe_for
from thresher.config import TaskRunnerSpec
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.slow
def test_curate_on_a_local_dask_cluster_matches_threads(tmp_path, c4_inputs, web_curation):
    """The same corpus (a truncated shard included) curated on Dask workers gives the tables the
    package's threads-runner curation gave."""
    from thresher.flows.curate import curate_flow

    threads_recipe, threads_result = web_curation
    recipe = recipe_for(tmp_path, c4_inputs, "on-dask", task_runner=TaskRunnerSpec(kind="dask", workers=2))
    result = curate_flow(recipe)
    assert result["ingest"]["rows_written"] == threads_result["ingest"]["rows_written"]
    assert result["ingest"]["quarantine_reasons"] == {"truncated_archive": 1}
    threads, dask = read_outputs(RunDir(threads_recipe.run_dir)), read_outputs(RunDir(recipe.run_dir))
    assert threads.keys() == dask.keys()
    for name, table in threads.items():
        assert table.equals(dask[name]), name
