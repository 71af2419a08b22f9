"""The `thresher` command line: this module only mounts the commands of `thresher/cli/<stage>.py`.

Every command module imports its stage lazily inside the command, so `thresher --help` loads
neither Prefect nor a model."""

from __future__ import annotations

import sys

import typer

from thresher.cli import (
    augment,
    classifier,
    curate,
    dashboards,
    dedup,
    dsir,
    embeddings,
    evaluate,
    export,
    ingest,
    judges,
    perplexity,
    recipe,
    score,
    select,
    serve,
    server,
    sql,
    validate,
)
from thresher.cli.run import global_options

app = typer.Typer(
    name="thresher",
    help="Curate LLM training data: stream corpora into a run directory, score every document, "
    "query the scores with DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    # Click hands these names down to every subcommand's context: `thresher score -h` works too.
    context_settings={"help_option_names": ["-h", "--help"]},
    # A bug's traceback without every frame's locals: they hold whole batches of documents.
    pretty_exceptions_show_locals=False,
)


app.callback()(global_options)


for command in (ingest.ingest, score.score, curate.curate, dedup.dedup, select.select, sql.sql, serve.serve,
                score.scorers, curate.demo, export.export, perplexity.perplexity, dashboards.dashboard,
                dashboards.report, validate.validate):
    app.command()(command)
app.command("train-kenlm")(perplexity.train_kenlm)
app.command("train-proxy")(perplexity.train_proxy)
app.add_typer(dsir.app, name="dsir", help="DSIR importance resampling: fit, weight, select.")
app.add_typer(judges.app, name="judge", help="SLM judges and IFD: run, calibrate, measure prompt injection.")
app.add_typer(embeddings.app, name="embeddings",
              help="Sentence embeddings: semantic dedup, diversity selection, judge distillation.")
app.add_typer(evaluate.app, name="eval",
              help="Train-and-compare: each selection against random data of the same size, on held-out loss.")
app.add_typer(classifier.app, name="classifier",
              help="fastText quality classifier: distil a judge or a reference set, score at web scale.")
app.add_typer(augment.app, name="augment", help="Evol-Instruct augmentation: evolve, eliminate, answer, re-judge.")
app.add_typer(server.app, name="server",
              help="A background Prefect server that every command reuses (no start-up per command).")
app.add_typer(recipe.app, name="recipe", help="The recipe format: JSON Schema for editors, Markdown reference.")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
