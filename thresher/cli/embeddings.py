"""`thresher embeddings`: sentence embeddings, semantic dedup, diversity selection, judge distillation.

    thresher embeddings embed RUN_DIR [--backend onnx] [--table instructions]
    thresher embeddings semdedup RUN_DIR [--threshold 0.9]
    thresher embeddings diversity RUN_DIR --name diverse -k 1000 [--score "judge_deita_quality_score"]
    thresher embeddings distill RUN_DIR --target judge_edu_score
    thresher embeddings run RUN_DIR --config embeddings.yaml      (all of the above, as configured)

semdedup, diversity and distill use the embeddings the run's last `embed` made (run.json). Each
command runs its Prefect flow (cached, resumable, artifacts) and prints a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, print_rows
from thresher.cli.run import LogLevel, prefect_logging, run_flow

app = typer.Typer(
    name="embeddings",
    help="Sentence embeddings (all-MiniLM-L6-v2 packaged: ONNX int8 or sentence-transformers) and what they "
    "enable: semantic dedup (SemDeDup), diversity selection (DEITA, k-center), judge distillation.",
    no_args_is_help=True,
    add_completion=False,
)

RunDirArg = Annotated[Path, typer.Argument(help="an ingested run directory")]
TableOpt = Annotated[str | None, typer.Option("--table", help="documents or instructions (default: every one)")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="seed; default: the run's seed")]




def _print_embed(summary: dict) -> None:
    keys = ("scorer", "model", "backend", "device", "dimension", "shards", "shards_skipped", "rows", "seconds",
            "rows_per_second")
    print_rows("embeddings", [{k: summary.get(k) for k in keys}])


def _print_semdedup(results: dict[str, dict]) -> None:
    print_rows("semantic dedup", [
        {"table": t, "rows": s["rows"], "clusters": s["kmeans"]["k"], "edges": s["pairs"]["edges"],
         "groups": s["groups"]["groups"], "duplicates": s["groups"]["duplicates"], "rate": s["duplicate_rate"],
         "seed": s["seed"], "cached": s.get("skipped", False)} for t, s in results.items()])
    console.print("sidecar: [bold]scores/semdedup@1[/] (recipes: `NOT semdedup_is_duplicate`)")


def _print_diversity(metas: list[dict]) -> None:
    for meta in metas:
        report = meta.get("report", {})
        print_rows(f"selection {meta['name']} ({meta['method']}, seed {meta['seed']})", [{
            "candidates": meta["candidates"], "examined": meta["examined"], "selected": meta["selected_rows"],
            "index": meta["index"]["kind"],
            "mean sim. selected": report.get("selected_mean_pairwise_similarity"),
            "mean sim. random": report.get("random_mean_pairwise_similarity"),
            "pairs > threshold": report.get("selected_pairs_above_threshold")}])
        console.print(f"written: [bold]selections/{meta['name']}/selected.parquet[/] "
                      f"(catalog view selections_{meta['name']})")


def _print_distill(results: list[dict]) -> None:
    for result in results:
        rows = [{"split": split, **{k: m.get(k) for k in ("rows", "spearman", "pearson", "mae", "baseline_mae", "f1",
                                                           "accuracy")}}
                for split, m in result["metrics"].items()]
        print_rows(f"distilled {result['target']} -> {result.get('score_column', 'distilled_' + result['name'])} "
                   f"(head {result['head_hash']}, alpha {result['alpha']:g})", rows)
        console.print(f"head: [bold]{result['head_dir']}[/]")


@app.command()
def embed(
    run_dir: RunDirArg,
    model: Annotated[str, typer.Option(help="packaged name, sentence-transformers dir or HF cache id")] = (
        "all-minilm-l6-v2"),
    backend: Annotated[str, typer.Option(help="auto, onnx or sentence_transformers")] = "auto",
    onnx_file: Annotated[str | None, typer.Option(help="an ONNX export of the model")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    max_seq_length: Annotated[int | None, typer.Option(help="tokens per text (default: the model's)")] = None,
    batch_size: Annotated[int, typer.Option(help="texts per forward pass")] = 64,
    text_column: Annotated[str, typer.Option(help="the column embedded")] = "text",
    tag: Annotated[str | None, typer.Option(help="names a second embedding: scores/embed_<tag>@1")] = None,
    table: TableOpt = None,
    threads: Annotated[int | None, typer.Option(help="encoder CPU threads")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Embed every row of RUN_DIR into scores/embed@1/ (L2-normalised float32 vectors)."""
    prefect_logging(log_level)
    from thresher.embeddings.config import EmbedConfig
    from thresher.flows.embeddings import embed_flow

    config = run_flow(lambda: EmbedConfig(model=model, backend=backend, onnx_file=onnx_file, device=device,
                                      max_seq_length=max_seq_length, batch_size=batch_size, text_column=text_column,
                                      tag=tag, table=table, threads=threads))
    _print_embed(run_flow(embed_flow, str(run_dir), config)["embed"])


@app.command()
def semdedup(
    run_dir: RunDirArg,
    threshold: Annotated[float, typer.Option(help="cosine similarity of a duplicate pair")] = 0.9,
    clusters: Annotated[int | None, typer.Option(help="k-means clusters (default: rows / 1000)")] = None,
    survivor: Annotated[str, typer.Option(help="lowest_doc_id, highest_score or lowest_score")] = "lowest_doc_id",
    survivor_column: Annotated[str | None, typer.Option(help="score column of highest/lowest_score")] = None,
    table: TableOpt = None,
    seed: SeedOpt = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Mark semantic duplicates (scores/semdedup@1/: semdedup_is_duplicate, semdedup_group, ...)."""
    prefect_logging(log_level)
    from thresher.embeddings.config import SemDedupConfig
    from thresher.flows.embeddings import semdedup_flow

    config = run_flow(lambda: SemDedupConfig(threshold=threshold, clusters=clusters, survivor=survivor,
                                         survivor_column=survivor_column, table=table, seed=seed))
    _print_semdedup(run_flow(semdedup_flow, str(run_dir), config)["semdedup"])


@app.command()
def diversity(
    run_dir: RunDirArg,
    name: Annotated[str, typer.Option("--name", "-n", help="selection name: selections/<name>/")],
    method: Annotated[str, typer.Option(help="deita (score, then similarity threshold) or kcenter")] = "deita",
    k: Annotated[int | None, typer.Option("-k", help="rows to select at most (kcenter: required)")] = None,
    score: Annotated[str | None, typer.Option(help="SQL ranking expression over <table>_scored, higher first")] = None,
    where: Annotated[str | None, typer.Option(help="SQL predicate restricting candidates")] = None,
    threshold: Annotated[float, typer.Option(help="deita: skip rows more similar than this to a kept row")] = 0.9,
    index: Annotated[str, typer.Option(help="kept-set index: auto, flat or ivf")] = "auto",
    table: Annotated[str, typer.Option(help="documents or instructions")] = "instructions",
    seed: SeedOpt = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Select diverse rows into selections/<name>/ and report their similarity vs a random sample."""
    prefect_logging(log_level)
    from thresher.embeddings.config import DiversitySelection
    from thresher.flows.embeddings import diversity_flow

    selection = run_flow(lambda: DiversitySelection(name=name, method=method, k=k, score_sql=score, where=where,
                                                threshold=threshold, index=index, table=table, seed=seed))
    _print_diversity(run_flow(diversity_flow, str(run_dir), [selection])["diversity"])


@app.command()
def distill(
    run_dir: RunDirArg,
    target: Annotated[str, typer.Option(help="the judge's score column (or a SQL expression), e.g. judge_edu_score")],
    name: Annotated[str | None, typer.Option(help="head name: distilled_<name> (default from target)")] = None,
    table: Annotated[str, typer.Option(help="documents or instructions")] = "documents",
    where: Annotated[str | None, typer.Option(help="SQL predicate restricting training rows")] = None,
    sample: Annotated[int, typer.Option(help="rows sampled for training + held-out evaluation")] = 20_000,
    holdout: Annotated[float, typer.Option(help="held-out fraction of the sample")] = 0.2,
    positive_threshold: Annotated[float | None, typer.Option(help="positive = score >= this (F1); default median")]
    = None,
    score_all: Annotated[bool, typer.Option(help="score every row with the head")] = True,
    seed: SeedOpt = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Fit a regression head on the embeddings that predicts TARGET; report held-out agreement."""
    prefect_logging(log_level)
    from thresher.embeddings.config import DistillConfig
    from thresher.flows.embeddings import distill_flow

    config = run_flow(lambda: DistillConfig(target=target, name=name, table=table, where=where, sample=sample,
                                        holdout_fraction=holdout, positive_threshold=positive_threshold,
                                        score_all=score_all, seed=seed))
    _print_distill(run_flow(distill_flow, str(run_dir), [config])["distill"])


@app.command("run")
def run_all(
    run_dir: RunDirArg,
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML: embed, semdedup, distill, diversity")],
    log_level: LogLevel = "WARNING",
) -> None:
    """Embed, then semantic dedup, distillation and diversity selections as the config says."""
    prefect_logging(log_level)
    from thresher.embeddings.config import load_embeddings_config
    from thresher.flows.embeddings import embeddings_flow

    loaded = run_flow(load_embeddings_config, config)
    result = run_flow(embeddings_flow, str(run_dir), loaded)
    _print_embed(result["embed"])
    if "semdedup" in result:
        _print_semdedup(result["semdedup"])
    if "distill" in result:
        _print_distill(result["distill"])
    if "diversity" in result:
        _print_diversity(result["diversity"])
