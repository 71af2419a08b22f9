"""The `augment` flows: Evol-Instruct rounds over a run's instructions into an augmented run, and
the loop that judges, deduplicates and selects the evolved pairs.

- `thresher-augment` (`augment_flow`): seeds, then one task per round (each round rebuilds its
  pool from disk and checkpoints every batch, so a killed flow resumes mid-round), then the
  augmented run's catalog and artifacts: per-round survival by operation and by elimination reason.
- `thresher-augment-loop` (`augment_loop_flow`): `augment_flow`, then `judge_flow` over the evolved
  pairs, `dedup_flow` with the source run as a prior run (evolved pairs that near-duplicate the
  source pool, or each other, are marked), and `select_flow` with instruction selection recipes:
  the selection in the augmented run is the augmented part of the final training set.

Tasks are thin wrappers over `thresher.augment.stage`.
"""

from __future__ import annotations

import math

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thresher.augment.config import AugmentConfig
from thresher.augment.report import elimination_by_reason, markdown, round_rows, survival_by_operation
from thresher.augment.stage import finish_augment, prepare_augment, run_round
from thresher.config import ScorerSpec, SelectionRecipe
from thresher.dedup.config import DedupConfig
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.progress import stage_progress
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


@task(name="augment-seeds", cache_policy=NO_CACHE)
def augment_seeds_task(source_run: str, config: AugmentConfig, output_run: str | None) -> dict:
    out, seeds = prepare_augment(source_run, config, output_run)
    return {"output_run": str(out.root), "seeds": seeds}


@task(name="augment-round", cache_policy=NO_CACHE, task_run_name="round {round_}")
def augment_round_task(output_run: str, config: AugmentConfig, round_: int, on_batch=None) -> dict:
    # Resuming is the stage's business: finished batches carry their content key and are read back.
    return run_round(RunDir(output_run), config, round_, on_batch=on_batch)


def publish_augment(source_name: str, config: AugmentConfig, summary: dict, rounds: list[dict]) -> None:
    key = artifact_key(source_name, "augment", config.name)
    create_table_artifact(survival_by_operation(rounds), key=f"{key}-survival"[:100],
                          description=f"Evol-Instruct {config.name}: survival rate by round and operation, with "
                                      "the eliminations of each reason")
    create_table_artifact(elimination_by_reason(rounds), key=f"{key}-eliminations"[:100],
                          description=f"Evol-Instruct {config.name}: eliminated attempts by round and reason")
    create_markdown_artifact(markdown(f"Evol-Instruct `{config.name}` of `{source_name}`", summary, rounds),
                             key=f"{key}-summary"[:100], description="survival by operation and elimination reason")


@flow(name="thresher-augment", log_prints=True)
@writes_run(lambda a: [a["source_run"], a["output_run"]])
def augment_flow(source_run: str, config: AugmentConfig | None = None, output_run: str | None = None) -> dict:
    """Evolve the instructions of `source_run` for `config.rounds` rounds into the augmented run
    (default `<source_run>/augment/<name>/`); resumable at batch granularity."""
    config = config or AugmentConfig()
    prepared = augment_seeds_task(str(source_run), config, output_run)
    out = RunDir(prepared["output_run"])
    batches = math.ceil(prepared["seeds"] / config.batch_size)
    rounds = []
    for round_ in range(1, config.rounds + 1):
        with stage_progress(f"augment round {round_}", batches, unit="attempts") as bar:
            stats = augment_round_task(str(out.root), config, round_,
                                       on_batch=lambda _r, _b, _n, rows, _reused: bar.advance(rows))
        print(f"round {round_}: {stats['survived']}/{stats['attempts']} survived "
              f"({stats['batches_reused']}/{stats['batches']} batches resumed)")
        rounds.append(stats)
    summary = finish_augment(out, config, rounds)
    build_catalog(out)
    source = RunDir(source_run)
    publish_augment(source.root.name, config, summary, rounds)
    return {"output_run": str(out.root), "source_run": str(source.root), "seeds": prepared["seeds"], **summary,
            "round_stats": [{k: v for k, v in r.items() if k != "parts"} for r in rounds],
            "rounds_table": round_rows(rounds)}


def ensure_source_index(source_run: str, dedup: DedupConfig) -> dict | None:
    """Deduplicate the source run first when it has no dedup index (a prior run must have one);
    an index built with other signature parameters is an error, never silently rebuilt."""
    from thresher.dedup.index import MissingIndexError, prior_run_parts
    from thresher.flows.dedup import dedup_flow

    own = dedup.model_copy(update={"prior_runs": []})
    try:
        prior_run_parts(source_run, 1, own, "instructions")
    except MissingIndexError:
        return dedup_flow(str(source_run), own)
    return None


@flow(name="thresher-augment-loop", log_prints=True)
@writes_run(lambda a: [a["source_run"], a["output_run"]])
def augment_loop_flow(
    source_run: str,
    config: AugmentConfig | None = None,
    judges: list[ScorerSpec] | None = None,
    dedup: DedupConfig | None = None,
    selections: list[SelectionRecipe] | None = None,
    output_run: str | None = None,
    scorers: list[ScorerSpec] | None = None,
) -> dict:
    """Augment, then score (`scorers`), judge, deduplicate (against the source run's pool when
    `config.dedup_against_source`) and select the evolved pairs (see the module doc)."""
    from thresher.flows.dedup import dedup_flow
    from thresher.flows.judges import judge_flow
    from thresher.flows.select import select_flow

    config = config or AugmentConfig()
    augmented = augment_flow(source_run, config, output_run)
    out = augmented["output_run"]
    result = {"output_run": out, "augment": augmented, "judge": None, "dedup": None, "source_dedup": None,
              "selections": []}
    if not RunDir(out).data_parts():
        print(f"no evolution survived in {out}: nothing to judge, deduplicate or select")
        return result
    if scorers:  # the selections' predicates read the same score columns as over the source run
        from thresher.flows.score import score_flow

        result["score"] = score_flow(out, list(scorers))
    if judges:
        result["judge"] = judge_flow(out, list(judges))
    if dedup is not None:
        prior = list(dedup.prior_runs)
        if config.dedup_against_source:
            result["source_dedup"] = ensure_source_index(str(RunDir(source_run).root), dedup)
            prior = [str(RunDir(source_run).root), *prior]
        result["dedup"] = dedup_flow(out, dedup.model_copy(update={"prior_runs": prior}))
    instruction_selections = [s for s in (selections or []) if s.table == "instructions"]
    if config.select is not None:
        instruction_selections = [s for s in instruction_selections if s.name in config.select]
    if instruction_selections:
        result["selections"] = select_flow(out, instruction_selections)
    return result
