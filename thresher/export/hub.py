"""Upload an export directory to the Hugging Face Hub as a dataset repository.

How huggingface_hub 2.x uploads (what `push_to_hub` relies on):
- `HfApi.upload_folder` asks the Hub's `preupload` endpoint, per file, for "regular" (inlined in
  the commit) or "lfs" (large: content uploaded first, the commit refers to it by sha256).
- With `hf_xet` installed (the default) large files go to Xet storage through a streamed,
  multi-commit pipeline; re-running an interrupted upload skips committed files and re-sends
  only missing chunks. That is the resumable path (`upload_large_folder` of huggingface_hub
  1.x no longer exists: `upload_folder` does its work).
- With `HF_HUB_DISABLE_XET=1` (read when huggingface_hub is imported) or without `hf_xet`, large
  files go through the Git LFS batch API and one commit. Re-running re-uploads nothing the Hub
  already has (the batch API answers with no action for known objects).

The token comes from the `token` argument (the export flow loads it from a Prefect Secret block),
then huggingface_hub's own lookup (`HF_TOKEN`, then the token saved by `hf auth login`). It is
handed to huggingface_hub only, never formatted into a message, logged or printed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from thresher.export.config import SPLIT
from thresher.export.dataset import ExportError

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"


class HubError(ExportError):
    """The upload cannot go ahead; the message never contains the token."""


def resolve_token(token: str | None = None) -> str:
    """The Hub token to use: `token` (the export flow passes a Prefect Secret block's value here),
    else HF_TOKEN / the saved login. Raises HubError when there is none."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError("no Hugging Face token: set HF_TOKEN, run `hf auth login`, or name a Prefect Secret "
                       "block that holds one")
    return found


def push_to_hub(
    export_dir: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload `export_dir` (made by `export_selection`) to the dataset repo `repo_id`.

    Creates the repo if needed, private unless `private=False`; refuses to push into an existing
    public repo when a private one was asked for. Shards of an earlier push that the export no
    longer has are deleted in the same commit, so `data/train-*` always matches the card.
    `revision` names a branch (created if absent). Returns the repository URL.
    """
    from huggingface_hub import HfApi

    export_dir = Path(export_dir)
    card = export_dir / "README.md"
    if not card.is_file() or not (export_dir / "data").is_dir():
        raise HubError(f"{export_dir} is not a thresher export (no README.md and data/)")
    selection = _read_selection(export_dir)
    api = HfApi(endpoint=endpoint)
    secret = resolve_token(token)

    repo_url = api.create_repo(repo_id, token=secret, repo_type=REPO_TYPE, private=private, exist_ok=True)
    info = api.repo_info(repo_id, token=secret, repo_type=REPO_TYPE)
    if private and info.private is False:
        raise HubError(f"dataset repo {repo_id} already exists and is public; pass private=False (--public) "
                       "to push to it anyway")
    if not private and info.private:
        logger.warning("dataset repo %s already exists and is private; it stays private", repo_id)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, token=secret, repo_type=REPO_TYPE, exist_ok=True)

    message = commit_message or (
        f"thresher export of selection {selection.get('name')} (recipe {selection.get('recipe_hash')})")
    logger.info("uploading %s to %s (%s)", export_dir, repo_id, "private" if private else "public")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=export_dir,
        repo_type=REPO_TYPE,
        revision=revision,
        token=secret,
        commit_message=message,
        # Shards from an earlier, larger export must not linger next to the new ones.
        delete_patterns=[f"data/{SPLIT}-*.parquet"],
    )
    logger.info("pushed %s: %s", repo_id, getattr(commit, "commit_url", commit))
    return str(repo_url)


def _read_selection(export_dir: Path) -> dict:
    try:
        return json.loads((export_dir / "selection.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
