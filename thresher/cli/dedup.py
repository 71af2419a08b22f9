"""`thresher dedup`: exact and MinHash near-duplicate detection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.run import LogLevel, fail_on, prefect_logging, run_flow
from thresher.cli.summaries import (
    print_dedup,
)

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def dedup(
    run_dir: Annotated[Path, typer.Argument(help="an ingested run directory")],
    config: Annotated[Path | None, typer.Option(
        help="YAML with DedupConfig fields (ngram, num_perm, bands, rows, threshold, seed, verify, survivor, "
             "prior_runs, …)")] = None,
    threshold: Annotated[float | None, typer.Option(help="target Jaccard; with --derive, picks bands x rows")] = None,
    derive: Annotated[bool, typer.Option(help="derive bands/rows from the threshold (datasketch's optimiser)")] = False,
    verify: Annotated[bool, typer.Option(help="drop candidate pairs below the threshold by exact Jaccard")] = False,
    prior_run: Annotated[list[Path] | None, typer.Option("--prior-run", help="dedup against an earlier run; "
                                                         "repeatable")] = None,
    seed: Annotated[int | None, typer.Option(help="MinHash seed")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Mark exact and MinHash near duplicates: dedup/ tables and scores/exact_dedup@1, minhash_dedup@1."""
    prefect_logging(log_level)
    from thresher.config import load_yaml_model
    from thresher.dedup.config import DedupConfig
    from thresher.flows.dedup import dedup_flow

    base = run_flow(load_yaml_model, config, DedupConfig) if config else DedupConfig()
    overrides: dict = {}
    if threshold is not None:
        overrides["threshold"] = threshold
    if derive:
        overrides.update(bands=None, rows=None)
    if verify:
        overrides["verify"] = True
    if prior_run:
        overrides["prior_runs"] = [str(p) for p in prior_run]
    if seed is not None:
        overrides["seed"] = seed
    try:
        settings = DedupConfig.model_validate({**base.model_dump(), **overrides})
    except ValueError as exc:
        fail_on(exc)
    print_dedup(run_flow(dedup_flow, str(run_dir), settings))
