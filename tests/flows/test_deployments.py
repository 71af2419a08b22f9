"""prefect.yaml: its deployments register with a Prefect API, both through `prefect deploy --all`
and through the objects `thresher serve` serves, with the same names, schedules and parameters."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.corpora import write_c4_shards
from thresher.flows.deployments import load_deployments

pytestmark = pytest.mark.usefixtures("prefect_harness")
REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"


def expected_schedules() -> dict[str, str]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return {d["name"]: d["schedules"][0]["cron"] for d in document["deployments"]}


def test_served_deployments_register_with_their_schedules():
    from prefect.client.orchestration import get_client

    deployments = load_deployments(PREFECT_YAML)
    assert {d.name for d in deployments} == set(expected_schedules())
    with get_client(sync_client=True) as client:
        for deployment in deployments:
            deployment_id = deployment.apply()
            stored = client.read_deployment(deployment_id)
            assert [s.schedule.cron for s in stored.schedules] == [expected_schedules()[deployment.name]]
            assert Path(stored.parameters["recipe_path"]).is_file()


def test_prefect_deploy_all_validates_the_file():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="thresher-local", type="process"))
        except Exception as exc:  # already there from an earlier test in this session
            if "already exists" not in str(exc).lower():
                raise
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "THRESHER_PROJECT_DIR": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    with get_client(sync_client=True) as client:
        for name, cron in expected_schedules().items():
            stored = client.read_deployment_by_name(f"thresher-curate-recipe/{name}")
            assert stored.work_pool_name == "thresher-local"
            assert [s.schedule.cron for s in stored.schedules] == [cron]


def test_deployed_entry_point_curates_a_recipe_file(tmp_path, sample_data):
    from thresher.flows.curate import curate_recipe_flow

    write_c4_shards(sample_data, tmp_path / "data", shards=2)
    (tmp_path / "recipe.yaml").write_text("name: tiny\nrun_dir: run\ninputs:\n  - paths: [data]\n")
    result = curate_recipe_flow(str(tmp_path / "recipe.yaml"))
    assert result["ingest"]["rows_written"] == 200
    assert Path(result["run_dir"]) == tmp_path / "run"
