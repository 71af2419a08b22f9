"""The end-to-end `curate` flow: ingest, score, dedup, DSIR, judge, embeddings, classifiers, select,
train-and-compare evaluation and Evol-Instruct augmentation, for one recipe."""

from __future__ import annotations

from prefect import flow

from thresher.config import Recipe, load_recipe
from thresher.dedup.config import DedupConfig
from thresher.flows.augment import augment_loop_flow
from thresher.flows.classifier import classifier_flow
from thresher.flows.dedup import dedup_flow
from thresher.flows.dsir import dsir_flow
from thresher.flows.embeddings import embeddings_flow
from thresher.flows.eval import eval_flow
from thresher.flows.ingest import ingest_flow
from thresher.flows.judges import judge_flow
from thresher.flows.locking import writes_run
from thresher.flows.runners import build_task_runner
from thresher.flows.score import score_flow
from thresher.flows.select import select_flow
from thresher.models.loaded import release_models
from thresher.storage.run_dir import RunDir


@flow(name="thresher-curate", log_prints=True)
@writes_run(lambda a: [a["recipe"].run_dir])
def curate_flow(recipe: Recipe) -> dict:
    run = RunDir(recipe.run_dir)
    run.init(seed=recipe.seed, recipe=recipe.model_dump(mode="json"), recipe_hash=recipe.content_hash())
    run.stage_started("curate")
    runner = recipe.task_runner

    def stage(flow_, *args, runner_: bool = True):
        # Each stage's models (a 2 GB judge, a KenLM file, an encoder) go once it ends: one process
        # runs every stage here, and the next stage loads its own.
        try:
            return (flow_.with_options(task_runner=build_task_runner(runner)) if runner_ else flow_)(*args)
        finally:
            release_models()

    root = str(run.root)
    ingested = stage(ingest_flow, root, list(recipe.inputs), recipe.ingest, recipe.seed)
    scored = stage(score_flow, root, list(recipe.scorers))
    deduped = stage(dedup_flow, root, recipe.dedup) if recipe.dedup else None
    dsir = stage(dsir_flow, root, recipe.dsir) if recipe.dsir else None
    judged = stage(judge_flow, root, list(recipe.judges), runner_=False) if recipe.judges else None
    embedded = stage(embeddings_flow, root, recipe.embeddings) if recipe.embeddings else None
    classified = stage(classifier_flow, root, list(recipe.classifiers)) if recipe.classifiers else None
    selected = stage(select_flow, root, list(recipe.selections), runner_=False) if recipe.selections else []
    evaluated = stage(eval_flow, root, list(recipe.evaluation), runner_=False) if recipe.evaluation else None
    augmented = _augment(recipe, run) if recipe.augment else None
    run.stage_finished("curate")
    return {"run_dir": str(run.root), "ingest": ingested, "score": scored, "dedup": deduped, "dsir": dsir,
            "judge": judged, "embeddings": embedded, "classifiers": classified, "selections": selected,
            "eval": evaluated, "augment": augmented}


def _augment(recipe: Recipe, run: RunDir) -> dict:
    """Evol-Instruct over the curated instructions; the evolved pairs get the recipe's scorers, every
    judge over all of them (a judge's sample_fraction is meant for the large source pool), dedup
    against this run, and the instruction selections."""
    judges = [spec.model_copy(update={"params": {k: v for k, v in spec.params.items()
                                                  if k not in ("sample_fraction", "sample_seed")}})
              for spec in recipe.judges]
    return augment_loop_flow(str(run.root), recipe.augment, judges=judges, dedup=recipe.dedup or DedupConfig(),
                             selections=list(recipe.selections), scorers=list(recipe.scorers))


@flow(name="thresher-curate-recipe", log_prints=True)
def curate_recipe_flow(recipe_path: str) -> dict:
    """Deployable entry point: the curate flow for a recipe file (see prefect.yaml)."""
    return curate_flow(load_recipe(recipe_path))
