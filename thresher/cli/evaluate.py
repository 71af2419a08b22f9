"""`thresher eval`: does a selection train a better model than random data of the same size?

    thresher eval run RUN_DIR -s top-edu -s dsir-wiki --eval-set heldout.jsonl [--seeds 3] [--steps 150]
    thresher eval run RUN_DIR --config eval.yaml      (a YAML list under `evaluation:`)
    thresher eval show RUN_DIR [--name NAME]

run trains the same small causal LM on each selection and on a seeded random sample of the same
table at the same number of tokens, over several seeds, and reports held-out loss against random
(tables eval_results / eval_summary / eval_curves in the catalog, a plot in eval/runs/<name>/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.run import LogLevel, prefect_logging, run_flow
from thresher.cli.summaries import print_evals

app = typer.Typer(
    name="eval",
    help="Train-and-compare: each selection against random data of the same size, on held-out loss.",
    no_args_is_help=True,
    add_completion=False,
)

RunDirArg = Annotated[Path, typer.Argument(help="a run directory with selections")]


@app.command("run")
def run_eval(
    run_dir: RunDirArg,
    selection: Annotated[list[str] | None, typer.Option("--selection", "-s", help="a selection to compare "
                                                        "(repeatable)")] = None,
    eval_set: Annotated[list[Path] | None, typer.Option(help="a held-out file (any input format; repeatable)")]
    = None,
    eval_sql: Annotated[str | None, typer.Option(help="a held-out set as SQL over the catalog (returns text, "
                                                 "and doc_id to keep those rows out of training)")] = None,
    name: Annotated[str, typer.Option(help="names eval/runs/<name>/")] = "compare",
    table: Annotated[str, typer.Option(help="documents or instructions")] = "documents",
    seeds: Annotated[int, typer.Option(help="models per arm (seeds 0..N-1)")] = 3,
    steps: Annotated[int | None, typer.Option(help="training steps of every model")] = None,
    tokens: Annotated[int | None, typer.Option(help="training tokens per arm (default: the smallest selection's)")]
    = None,
    tokenizer: Annotated[str, typer.Option(help="bpe, bytes, or a tokenizer directory / packaged model")] = "bpe",
    on_overlap: Annotated[str, typer.Option(help="refuse or warn when an eval set overlaps training data")]
    = "refuse",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML with an `evaluation:` list "
                                                "(instead of the options above)")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Train the same small LM on each selection and on random data of the same size, over seeds, and
    report held-out loss against random."""
    prefect_logging(log_level)
    from thresher.eval.config import EvalConfig, EvalSetSpec, TrainSettings, load_evals
    from thresher.flows.eval import eval_flow

    if config is not None:
        configs = list(run_flow(load_evals, config).evaluation)
    else:
        def build() -> EvalConfig:
            sets = [EvalSetSpec(name=Path(p).name.split(".")[0] or f"set{i}", paths=[str(p)])
                    for i, p in enumerate(eval_set or [])]
            if eval_sql:
                sets.append(EvalSetSpec(name="sql", sql=eval_sql))
            if not sets:
                raise ValueError("give --eval-set FILE or --eval-sql QUERY (the held-out text), or --config")
            train = TrainSettings(steps=steps) if steps else TrainSettings()
            return EvalConfig(name=name, table=table, selections=selection or [], eval_sets=sets,
                              seeds=list(range(seeds)), train=train, tokens=tokens, tokenizer=tokenizer,
                              on_overlap=on_overlap)
        configs = [run_flow(build)]
    print_evals(run_flow(eval_flow, str(run_dir), configs)["evals"])


@app.command()
def show(
    run_dir: RunDirArg,
    name: Annotated[str | None, typer.Option(help="one eval (default: all of them)")] = None,
) -> None:
    """Print the summary of the evals already run in RUN_DIR (from the catalog's eval_summary view)."""
    from thresher.eval.report import stored_reports

    reports = run_flow(stored_reports, run_dir, name)
    if not reports:
        run_flow(_none, run_dir, name)
    print_evals(reports)


def _none(run_dir: Path, name: str | None) -> None:
    raise ValueError(f"{run_dir} has no eval{' ' + repr(name) if name else ''}: run `thresher eval run` first")
