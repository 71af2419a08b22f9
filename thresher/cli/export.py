"""`thresher export`: the typer command (registered by thresher.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail, print_rows
from thresher.cli.run import LogLevel, prefect_logging, run_flow
from thresher.export.config import DEFAULT_MAX_SHARD_BYTES


def export(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with selections/<SELECTION>/")],
    selection: Annotated[str, typer.Argument(help="the selection to export")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="export directory (default: RUN_DIR/exports/SELECTION)")] = None,
    push: Annotated[str | None, typer.Option("--push", metavar="REPO_ID",
                                             help="upload the export to this Hub dataset repo (owner/name)")] = None,
    public: Annotated[bool, typer.Option("--public", help="create the Hub repo public (default: private)")] = False,
    license: Annotated[str | None, typer.Option(help="licence id for the card, e.g. odc-by "
                                                     "(default: the selection recipe's, else 'unknown')")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Hub URL (default: HF_ENDPOINT or huggingface.co)")] = None,
    token_secret: Annotated[str | None, typer.Option(
        "--token-secret", help="name of a Prefect Secret block holding the Hub token "
                               "(default: HF_TOKEN, else the `hf auth login` token)")] = None,
    revision: Annotated[str | None, typer.Option(help="Hub branch to push to (created if absent)")] = None,
    column: Annotated[list[str] | None, typer.Option(
        "--column", "-c", help="export only these columns (repeatable; doc_id is always kept)")] = None,
    max_shard_mb: Annotated[int, typer.Option(help="target Parquet shard size in MB")] = (
        DEFAULT_MAX_SHARD_BYTES // 10**6),
    shard_rows: Annotated[int | None, typer.Option(help="at most this many rows per shard")] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Export SELECTION of RUN_DIR as a Hugging Face dataset (Parquet shards + dataset card);
    with --push, upload it to the Hub. The token is never printed or logged."""
    prefect_logging(log_level)
    if max_shard_mb <= 0 or (shard_rows is not None and shard_rows <= 0):
        fail("--max-shard-mb and --shard-rows must be positive")
    if public and not push:
        fail("--public only applies with --push")
    hub_errors: tuple[type[Exception], ...] = ()
    if push:
        from huggingface_hub.errors import HfHubHTTPError

        hub_errors = (HfHubHTTPError,)
    from thresher.flows.export import export_flow

    def run() -> dict:
        return export_flow(str(run_dir), selection, push, out_dir=str(out) if out else None, private=not public,
                           license=license, columns=list(column) if column else None, shard_rows=shard_rows,
                           max_shard_bytes=max_shard_mb * 10**6, hf_token_secret=token_secret,
                           endpoint=endpoint, revision=revision)

    try:
        result = run_flow(run)
    except hub_errors as exc:  # the message holds the URL and the Hub's answer, never the token
        fail(f"the Hub refused the upload: {exc}")
    row = {"rows": result["rows"], "shards": result["shards"], "size (MB)": round(result["bytes"] / 1e6, 1)}
    print_rows("export", [row])
    console.print(f"export directory: [bold]{result['export_dir']}[/]", soft_wrap=True)
    if result["repo_url"]:
        visibility = "private" if result["private"] else "public"
        console.print(f"pushed to: [bold]{result['repo_url']}[/] ({visibility})", soft_wrap=True)
