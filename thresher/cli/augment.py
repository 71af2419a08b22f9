"""`thresher augment ...`: Evol-Instruct over a run's instructions, survival statistics, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail, parse_key_values, print_rows
from thresher.cli.run import LogLevel, fail_on, prefect_logging, run_flow

app = typer.Typer(
    name="augment",
    help="Evol-Instruct with a small LM: evolve instructions for N rounds, eliminate failed evolutions (with a "
    "reason), answer the survivors; then judge, deduplicate and select them.",
    no_args_is_help=True,
    add_completion=False,
)




def build_config(config_file: Path | None, overrides: dict):
    """An AugmentConfig from a YAML file (or the defaults) with command-line overrides applied."""
    from pydantic import ValidationError

    from thresher.augment.config import AugmentConfig
    from thresher.config_base import load_yaml_model

    base = run_flow(load_yaml_model, config_file, AugmentConfig) if config_file else AugmentConfig()
    merged = base.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return AugmentConfig.model_validate(merged)
    except ValidationError as exc:
        fail_on(exc)


def _print_summary(result: dict) -> None:
    from thresher.augment.report import survival_by_operation

    augmented = result.get("augment", result)
    print_rows("augment rounds", augmented["rounds_table"])
    print_rows("survival by operation (all rounds)",
               [{k: v for k, v in r.items() if k != "round"} for r in survival_by_operation(augmented["round_stats"])
                if r["round"] == "all"])
    print_rows("eliminations", [{"reason": k, "attempts": v} for k, v in augmented["eliminated"].items()])
    if result.get("judge"):
        print_rows("judges", [{k: j.get(k) for k in ("judge", "rows", "model_rows", "cache_hits", "parse_errors")}
                              for j in result["judge"]["judges"]])
    if result.get("dedup"):
        print_rows("dedup", [{"table": t, "documents": s["documents"], "near dups": s["minhash_duplicates"],
                              "of the source pool": s["duplicates_of_prior_runs"]}
                             for t, s in result["dedup"]["tables"].items()])
    for selection in result.get("selections") or []:
        print_rows(f"selection {selection['name']}", [{"step": s["step"], "rows": s["rows"]}
                                                      for s in selection["funnel"]]
                   + [{"step": "selected", "rows": selection["selected_rows"]}])
    console.print(f"augmented run: [bold]{augmented['output_run']}[/]")


@app.command()
def run(
    source_run: Annotated[Path, typer.Argument(help="a run directory with an instructions table")],
    config: Annotated[Path | None, typer.Option(help="YAML with AugmentConfig fields")] = None,
    name: Annotated[str | None, typer.Option(help="augmentation name (default: evol)")] = None,
    output_run: Annotated[Path | None, typer.Option(help="augmented run directory (default "
                                                    "SOURCE_RUN/augment/NAME)")] = None,
    selection: Annotated[str | None, typer.Option(help="seed only this selection of SOURCE_RUN")] = None,
    sample: Annotated[int | None, typer.Option(help="at most this many seeds (seeded sample)")] = None,
    rounds: Annotated[int | None, typer.Option(help="evolution rounds")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the operation choice")] = None,
    batch_size: Annotated[int | None, typer.Option(help="attempts per model call and checkpoint")] = None,
    model: Annotated[str | None, typer.Option("--model", help="the evolving (and answering) model")] = None,
    responder_model: Annotated[str | None, typer.Option(help="the answering model, if another")] = None,
    judge_model: Annotated[str | None, typer.Option(help="the information-gain judge")] = None,
    backend_option: Annotated[list[str] | None, typer.Option(
        "--backend-option", help="KEY=VALUE option of every model's backend, e.g. dtype=float32; repeatable")] = None,
    equality_mode: Annotated[str | None, typer.Option(help="auto, logprobs or generate")] = None,
    evolve_tokens: Annotated[int | None, typer.Option(help="max new tokens of an evolution")] = None,
    respond_tokens: Annotated[int | None, typer.Option(help="max new tokens of a response")] = None,
    judge: Annotated[list[str] | None, typer.Option(
        "--judge", "-j", help="then judge the evolved pairs (judge_alpagasus, ...); repeatable")] = None,
    dedup: Annotated[bool, typer.Option(help="then near-deduplicate them against the source run")] = False,
    select: Annotated[list[Path] | None, typer.Option(
        "--select", help="then apply this instruction selection recipe (YAML); repeatable")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Evolve SOURCE_RUN's instructions into an augmented run: every attempt with its lineage and
    elimination reason in augment/attempts/, the surviving pairs in instructions/."""
    prefect_logging(log_level)
    from thresher.storage.run_dir import RunDir

    if not RunDir(source_run).exists():
        fail(f"{source_run} is not a thresher run directory (no run.json)")
    options = parse_key_values(backend_option, "--backend-option")
    overrides: dict = {"name": name, "output_run": str(output_run) if output_run else None, "selection": selection,
                       "sample": sample, "rounds": rounds, "seed": seed, "batch_size": batch_size,
                       "equality_mode": equality_mode}
    if evolve_tokens:
        overrides["evolve"] = {"max_new_tokens": evolve_tokens}
    if respond_tokens:
        overrides["respond"] = {"max_new_tokens": respond_tokens}
    opts = {"options": options} if options else {}
    if model or options:
        overrides["generator"] = {**({"model": model} if model else {}), **opts}
    if responder_model:
        overrides["responder"] = {"model": responder_model, **opts}
    if judge_model or options:
        overrides["judge"] = {**({"model": judge_model} if judge_model else {}), **opts}
    cfg = build_config(config, overrides)
    if judge or dedup or select:
        from thresher.config import ScorerSpec, load_selection_recipe
        from thresher.dedup.config import DedupConfig
        from thresher.flows.augment import augment_loop_flow
        from thresher.scorers.registry import accepted_params

        recipes = [run_flow(load_selection_recipe, p) for p in select or []]
        specs = [ScorerSpec(name=j, params=accepted_params(j, {"backend_options": options} if options else {}))
                 for j in judge or []]
        result = run_flow(augment_loop_flow, str(source_run), cfg, specs, DedupConfig() if dedup else None, recipes)
    else:
        from thresher.flows.augment import augment_flow

        result = run_flow(augment_flow, str(source_run), cfg)
    _print_summary(result)


@app.command()
def stats(
    run_dir: Annotated[Path, typer.Argument(help="an augmented run directory")],
) -> None:
    """Survival by round and operation, and eliminations by reason, of an augmented run."""
    from thresher.augment.report import elimination_by_reason, read_round_stats, round_rows, survival_by_operation
    from thresher.storage.run_dir import RunDir

    rounds = read_round_stats(RunDir(run_dir))
    if not rounds:
        fail(f"{run_dir} has no augment statistics: is it an augmented run?")
    print_rows("rounds", round_rows(rounds))
    print_rows("survival by round and operation", survival_by_operation(rounds))
    print_rows("eliminations by round and reason", elimination_by_reason(rounds))


@app.command()
def lineage(
    run_dir: Annotated[Path, typer.Argument(help="an augmented run directory")],
    doc_id: Annotated[str, typer.Argument(help="an evolved pair's doc_id")],
) -> None:
    """The chain of evolutions from the seed to DOC_ID."""
    from thresher.augment.report import lineage_chain
    from thresher.storage.run_dir import RunDir

    chain = run_flow(lineage_chain, RunDir(run_dir), doc_id)
    print_rows(f"lineage of {doc_id}", chain)


@app.command()
def prompts() -> None:
    """The evolution operations and the prompt versions shipped with thresher."""
    from thresher.augment.templates import available_prompts, load_evolve_template

    print_rows("augment prompts", [{"prompt": t, "version": v, "hardened": h} for t, v, h in available_prompts()])
    template = load_evolve_template()
    print_rows(f"operations (evolve prompt {template.version})", [
        {"operation": op.name, "kind": "in-" + op.kind, "method": op.method or "a new, rarer instruction of the "
         "same domain", "formats": ", ".join(template.formats(op.name)) or "-"} for op in template.operations.values()])
