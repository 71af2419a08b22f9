"""`thresher classifier`: a fastText quality classifier distilled from a judge (or trained on a
reference set, DCLM-style) that scores every row at thousands of rows per second on one core.

    thresher classifier train RUN_DIR --name edu --target judge_edu_score [--positive-threshold 3]
    thresher classifier train RUN_DIR --name ref --reference wiki.jsonl [--positive-where SQL]
    thresher classifier score RUN_DIR --model runs/a/models/classifier_edu
    thresher classifier run RUN_DIR --config classifiers.yaml   (a YAML list under `classifiers:`)

train also scores every row (classifier_<name>_score) and writes the run-wide percentile
(classifier_<name>_pct, 0-100) that selections read: `classifier_edu_pct >= 90` keeps the top 10 %.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.run import LogLevel, prefect_logging, run_flow
from thresher.cli.summaries import print_classifier_scoring, print_classifiers

app = typer.Typer(
    name="classifier",
    help="fastText quality classifier: distil a judge (or a reference set) into a scorer that runs at web scale.",
    no_args_is_help=True,
    add_completion=False,
)

RunDirArg = Annotated[Path, typer.Argument(help="an ingested run directory")]


@app.command()
def train(
    run_dir: RunDirArg,
    name: Annotated[str, typer.Option("--name", "-n", help="columns classifier_<name>_score / _pct")],
    target: Annotated[str | None, typer.Option(help="judge source: the judge's score column or a SQL expression")]
    = None,
    positive_threshold: Annotated[float | None, typer.Option(help="judge source: positive = target >= this "
                                                             "(default: the training median)")] = None,
    reference: Annotated[list[Path] | None, typer.Option(help="reference source: positive files (repeatable)")]
    = None,
    reference_format: Annotated[str, typer.Option(help="format of the reference files")] = "auto",
    positive_where: Annotated[str | None, typer.Option(help="reference source: SQL predicate of positive run rows")]
    = None,
    negative_where: Annotated[str | None, typer.Option(help="reference source: SQL predicate of the negative pool")]
    = None,
    where: Annotated[str | None, typer.Option(help="SQL predicate restricting every sampled run row")] = None,
    table: Annotated[str, typer.Option(help="documents or instructions")] = "documents",
    sample: Annotated[int, typer.Option(help="labelled rows at most (train + held out)")] = 20_000,
    holdout: Annotated[float, typer.Option(help="held-out fraction of the sample")] = 0.2,
    score_all: Annotated[bool, typer.Option(help="score every row and write the percentiles")] = True,
    seed: Annotated[int | None, typer.Option(help="seed; default: the run's seed")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Train a fastText classifier (labels from a judge's TARGET, or reference positives vs the run's pool),
    report held-out agreement, and score every row."""
    prefect_logging(log_level)
    from thresher.classifier.config import ClassifierConfig
    from thresher.config_base import InputSpec
    from thresher.flows.classifier import classifier_flow

    source = "reference" if reference or positive_where else "judge"
    specs = [InputSpec(paths=[str(p)], format=reference_format) for p in reference or []]
    config = run_flow(lambda: ClassifierConfig(
        name=name, table=table, source=source, target=target, positive_threshold=positive_threshold,
        reference=specs, positive_where=positive_where, negative_where=negative_where, where=where,
        sample=sample, holdout_fraction=holdout, score_all=score_all, seed=seed))
    print_classifiers(run_flow(classifier_flow, str(run_dir), [config])["classifiers"])


@app.command()
def score(
    run_dir: RunDirArg,
    model: Annotated[Path, typer.Option(help="a model directory, or models/classifier_<name>/ (its newest)")],
    table: Annotated[str, typer.Option(help="documents or instructions")] = "documents",
    log_level: LogLevel = "WARNING",
) -> None:
    """Score every row of RUN_DIR with an existing classifier (from this run or another) + percentiles."""
    prefect_logging(log_level)
    from thresher.flows.classifier import classifier_score_flow

    print_classifier_scoring(run_flow(classifier_score_flow, str(run_dir), str(model), table)["scoring"])


@app.command("run")
def run_all(
    run_dir: RunDirArg,
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML with a `classifiers:` list")],
    log_level: LogLevel = "WARNING",
) -> None:
    """Train and apply every classifier the config lists."""
    prefect_logging(log_level)
    from thresher.classifier.config import load_classifiers
    from thresher.flows.classifier import classifier_flow

    loaded = run_flow(load_classifiers, config)
    print_classifiers(run_flow(classifier_flow, str(run_dir), list(loaded.classifiers))["classifiers"])
