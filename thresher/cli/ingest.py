"""`thresher ingest`: stream inputs into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console
from thresher.cli.run import LogLevel, fail_on, prefect_logging, run_flow
from thresher.cli.summaries import (
    print_ingest,
)

RunDirArg = Annotated[Path, typer.Argument(help="run directory (created if absent)")]


def ingest(
    run_dir: RunDirArg,
    inputs: Annotated[list[str], typer.Argument(
        help="input files, globs, directories, Hugging Face datasets (hf://datasets/OWNER/NAME\\[/PATH]) "
             "or object storage (s3://BUCKET/PREFIX/**)")],
    format: Annotated[str, typer.Option(
        help="auto|c4|fineweb|refinedweb|jsonl|parquet|csv|tsv|arrow|text|alpaca|sharegpt")] = "auto",
    text_field: Annotated[str | None, typer.Option(help="text column for jsonl/parquet/csv/arrow")] = None,
    text_mode: Annotated[str, typer.Option(
        help="plain-text files: file (one document per file) or lines (one per non-blank line)")] = "file",
    url_field: Annotated[str | None, typer.Option(help="URL column for jsonl/parquet")] = None,
    max_doc_bytes: Annotated[int, typer.Option(help="quarantine documents larger than this")] = 2 << 20,
    batch_rows: Annotated[int, typer.Option(help="rows per Arrow batch / Parquet row group")] = 2048,
    max_quarantine_share: Annotated[float, typer.Option(
        help="warn about a file that quarantines more than this share of its rows")] = 0.5,
    strict: Annotated[bool, typer.Option(
        help="exit with an error (after writing the run) when a file is unreadable or over the share")] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Stream INPUTS into RUN_DIR/documents (or instructions); bad rows go to RUN_DIR/quarantine."""
    prefect_logging(log_level)
    from pydantic import ValidationError

    from thresher.config import IngestConfig, InputSpec
    from thresher.flows.ingest import ingest_flow

    try:
        spec = InputSpec(paths=inputs, format=format, text_field=text_field, url_field=url_field,
                         text_mode=text_mode)
        config = IngestConfig(max_doc_bytes=max_doc_bytes, batch_rows=batch_rows,
                              max_quarantine_share=max_quarantine_share, strict=strict)
    except ValidationError as exc:
        fail_on(exc)
    result = run_flow(ingest_flow, str(run_dir), [spec], config)
    print_ingest(result)
    console.print(f"run directory: [bold]{result['run_dir']}[/]")
