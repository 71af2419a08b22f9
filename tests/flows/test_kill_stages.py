"""The stages that hold a model (a judge, embeddings, Evol-Instruct) killed with SIGKILL mid-stage in a
child process, then resumed: every Parquet table of the run equals an uninterrupted run's, no doc_id
is lost or written twice, no temporary file is left, and the resume reuses what the killed process
finished.

One recipe (tests/kill.py: Alpaca instructions, a one-layer GPT-2 trained here, MiniLM) is curated
once, stage by stage, in this process; the run directory as it stood before each stage is the
victim's starting point, and the run after it the reference. The victim runs that one stage as
`curate_flow` calls it; the resume runs it again here, where torch and the models are loaded.
bench/kill_anywhere.py kills the whole `thresher curate` of the same recipe (with web stages too)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import kill
from thresher.judges.cache import JudgmentCache

pytestmark = pytest.mark.usefixtures("prefect_harness")


def first_part_in(directory: str):
    return lambda run: any((run / directory).glob("part-*.parquet"))


# stage -> (the stage run.json must show running at death, what must exist under the run when the
# kill comes)
SCENARIOS = {
    # the first batch of judgments is committed to the judge's SQLite store
    "judge": ("judge", lambda run: JudgmentCache(run / "judge_cache", "judge_alpagasus").count() > 0),
    "embeddings": ("embeddings", first_part_in("scores/embed@1")),  # the first shard is embedded
    "augment": ("augment/evol/augment", first_part_in("augment/evol/augment/attempts")),  # round 1's first batch
}


@pytest.fixture(scope="module")
def curated(sample_data, tmp_path_factory) -> tuple[Path, dict, dict]:
    """(root, models, {stage: (copy of the run before it, tables of the run after it)})."""
    from thresher.flows.curate import curate_flow

    root = tmp_path_factory.mktemp("kill-stages")
    instructions = kill.write_instructions(sample_data, root / "instructions", shards=3, rows=18)
    models = kill.train_models(sample_data, root / "models", kenlm=False)
    recipe = kill.kill_recipe(root / "run", instructions, models)
    curate_flow(kill.early_recipe(recipe))
    states = {}
    for stage in kill.LATE_STAGES:
        before = root / f"before-{stage}"
        shutil.copytree(recipe.run_dir, before, ignore=shutil.ignore_patterns(".prefect-results"))
        result = kill.run_stage(stage, recipe)
        states[stage] = (before, kill.run_tables(Path(recipe.run_dir)))
    assert result["augment"]["survived"] > 0, "no evolution survived: the augmented run would be empty"
    return root, models, states


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(SCENARIOS))
def test_killed_mid_stage_resumes_to_identical_outputs(tmp_path, curated, stage):
    from prefect.settings import PREFECT_API_URL

    root, models, states = curated
    before, expected = states[stage]
    running, watched = SCENARIOS[stage]
    run_root = tmp_path / "run"
    shutil.copytree(before, run_root)
    recipe = kill.kill_recipe(run_root, root / "instructions", models)
    recipe_path = kill.write_recipe(recipe, tmp_path / "recipe.yaml")

    env = kill.child_env(PREFECT_API_URL.value())  # this session's API: the child starts none of its own
    victim = kill.start_stage(stage, recipe_path, env, tmp_path / "victim.log")
    died = kill.kill_when(victim, lambda: watched(run_root))
    assert died, f"the stage finished before it could be killed:\n{(tmp_path / 'victim.log').read_text()[-2000:]}"
    assert running in kill.running_stages(run_root), f"killed outside {running}: {kill.running_stages(run_root)}"
    assert kill.differences(expected, kill.run_tables(run_root)), "the kill left nothing to resume"

    result = kill.run_stage(stage, recipe)

    assert kill.differences(expected, kill.run_tables(run_root)) == []
    assert kill.leftover_temp_files(run_root) == []
    assert running in kill.finished_stages(run_root)
    # what the killed process finished is reused, not computed again
    if stage == "judge":
        assert result["judges"][0]["cache_hits"] > 0
    elif stage == "embeddings":
        assert result["embed"]["shards_skipped"] > 0
    else:
        assert result["augment"]["batches_reused"] > 0
