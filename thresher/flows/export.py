"""The `export` flow: a selection as a Hugging Face dataset directory, optionally pushed to the Hub.

The Hub token is never a flow or task parameter (Prefect stores those in its API): name a Prefect
Secret block with `hf_token_secret`, or let huggingface_hub find HF_TOKEN / the saved login.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from thresher.export.config import DEFAULT_MAX_SHARD_BYTES
from thresher.export.dataset import export_selection, read_export_summary
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.storage.run_dir import RunDir


@task(name="export-selection", task_run_name="export {selection}")
def export_task(run_root: str, selection: str, out_dir: str | None, shard_rows: int | None, max_shard_bytes: int,
                license: str | None, columns: list[str] | None) -> dict:
    path = export_selection(run_root, selection, out_dir, shard_rows=shard_rows, max_shard_bytes=max_shard_bytes,
                            license=license, columns=columns)
    return read_export_summary(path)


def secret_token(block_name: str) -> str:
    """The token held by the Prefect Secret block `block_name` (loaded inside the task, so it is
    never a parameter Prefect records). The messages name the block, never its value."""
    from prefect.blocks.system import Secret

    from thresher.export.hub import HubError

    try:
        value = Secret.load(block_name).get()
    except ValueError as exc:
        raise HubError(f"cannot load the Prefect Secret block {block_name!r}: {exc}") from None
    if not isinstance(value, str) or not value:
        raise HubError(f"the Prefect Secret block {block_name!r} does not hold a token string")
    return value


@task(name="push-to-hub", task_run_name="push {repo_id}")
def push_task(export_dir: str, repo_id: str, private: bool, hf_token_secret: str | None, endpoint: str | None,
              revision: str | None) -> str:
    from thresher.export.hub import push_to_hub

    token = secret_token(hf_token_secret) if hf_token_secret else None
    return push_to_hub(export_dir, repo_id, private=private, token=token, endpoint=endpoint, revision=revision)


@flow(name="thresher-export", log_prints=True)
@writes_run("run_dir")
def export_flow(
    run_dir: str,
    selection: str,
    push_repo_id: str | None = None,
    *,
    out_dir: str | None = None,
    private: bool = True,
    license: str | None = None,
    columns: list[str] | None = None,
    shard_rows: int | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    hf_token_secret: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
) -> dict:
    """Export `selections/<selection>` of `run_dir`; push it to `push_repo_id` when given."""
    run = RunDir(run_dir)
    run.stage_started("export", selection=selection, repo_id=push_repo_id)
    summary = export_task(str(run.root), selection, out_dir, shard_rows, max_shard_bytes, license, columns)
    repo_url = None
    if push_repo_id:
        repo_url = push_task(summary["export_dir"], push_repo_id, private, hf_token_secret, endpoint, revision)
    result = {**summary, "repo_id": push_repo_id, "repo_url": repo_url, "private": private if push_repo_id else None}
    pushed = (f"| pushed to | [{push_repo_id}]({repo_url}) ({'private' if private else 'public'}) |\n"
              if repo_url else "| pushed to | (not pushed) |\n")
    create_markdown_artifact(
        f"# Export of selection `{selection}`\n\n"
        "| | |\n|---|---|\n"
        f"| rows | {summary['rows']:,} |\n"
        f"| shards | {summary['shards']} |\n"
        f"| size | {summary['bytes']:,} bytes |\n"
        f"| directory | `{summary['export_dir']}` |\n"
        + pushed,
        key=artifact_key(run.root.name, "export", selection),
        description=f"Hugging Face export of selection {selection}",
    )
    run.stage_finished("export", selection=selection, rows=summary["rows"], shards=summary["shards"],
                       bytes=summary["bytes"], repo_id=push_repo_id, repo_url=repo_url)
    return result
