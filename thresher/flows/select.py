"""The `select` flow: apply selection recipes to a run, publish each funnel."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from thresher.config import SelectionRecipe
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir
from thresher.storage.select import run_selection


@task(name="select", task_run_name="select {recipe.name}")
def select_task(run_root: str, recipe: SelectionRecipe) -> dict:
    return run_selection(RunDir(run_root), recipe)


@flow(name="thresher-select", log_prints=True)
@writes_run("run_dir")
def select_flow(run_dir: str, recipes: list[SelectionRecipe]) -> list[dict]:
    """Write `selections/<name>/` for each recipe and refresh the catalog."""
    run = RunDir(run_dir)
    run.stage_started("select", selections=[r.name for r in recipes])
    results = [select_task(str(run.root), recipe) for recipe in recipes]
    build_catalog(run)
    for result in results:
        create_table_artifact(
            [{"step": s["step"], "rows": s["rows"], "sql": s["sql"]} for s in result["funnel"]]
            + [{"step": "selected", "rows": result["selected_rows"], "sql": ""}],
            key=artifact_key(run.root.name, "selection", result["name"]),
            description=f"Funnel of selection {result['name']} (recipe {result['recipe_hash']})",
        )
    run.stage_finished("select", selected={r["name"]: r["selected_rows"] for r in results})
    return results
