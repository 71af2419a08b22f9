"""The curate flow on other task runners gives the same tables as on threads."""

import pytest

from tests.corpora import write_c4_shards
from tests.flows.test_curate_flow import read_outputs
from thresher.config import InputSpec, Recipe, TaskRunnerSpec
from thresher.storage.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.slow
def test_curate_on_a_local_dask_cluster_matches_threads(tmp_path, sample_data):
    from thresher.flows.curate import curate_flow

    inputs = tmp_path / "inputs"
    write_c4_shards(sample_data, inputs, shards=4)
    results = {}
    for kind in ("threads", "dask"):
        recipe = Recipe(name=f"on-{kind}", run_dir=str(tmp_path / kind), inputs=[InputSpec(paths=[str(inputs)])],
                        task_runner=TaskRunnerSpec(kind=kind, workers=2))
        result = curate_flow(recipe)
        assert result["ingest"]["rows_written"] == 200
        results[kind] = read_outputs(RunDir(recipe.run_dir))
    assert results["threads"].keys() == results["dask"].keys()
    for name, table in results["threads"].items():
        assert table.equals(results["dask"][name]), name
