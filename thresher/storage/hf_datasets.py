"""Inputs named by a Hugging Face dataset id: `hf://datasets/<owner>/<name>[@<revision>][/<path or glob>]`.

The id resolves to the dataset repository's snapshot in the local Hugging Face cache through
`huggingface_hub.snapshot_download` (the cache layout, revisions and `HF_HUB_OFFLINE` are its own);
the snapshot's files are then ordinary input files for the readers (Parquet, JSON lines, CSV, Arrow
...), with the same shards, fingerprints and quarantine as any local folder. With a path after the
name, only that file, folder or glob of the repository is fetched and read.

Only data files are read: a repository's loading script is never run (that would be remote code).
When the snapshot is not cached and the Hub cannot be reached (offline, or no network), the error
says how to fetch it first (`huggingface-cli download --repo-type dataset <owner>/<name>`).
"""

from __future__ import annotations

import glob
import os
import re

from thresher.storage.file_errors import InputError

HF_DATASET_PREFIX = "hf://datasets/"
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_hf_dataset(path: str) -> bool:
    return path.startswith(HF_DATASET_PREFIX)


def split_hf_dataset(path: str) -> tuple[str, str | None, str]:
    """(repo_id, revision or None, path inside the repository or "") of an `hf://datasets/` URL."""
    parts = path[len(HF_DATASET_PREFIX):].split("/")
    if len(parts) < 2 or not parts[1]:
        raise InputError(f"{path}: a Hugging Face dataset is hf://datasets/<owner>/<name>[@<revision>][/<path>]")
    owner, name_revision, inner = parts[0], parts[1], "/".join(p for p in parts[2:] if p)
    name, _, revision = name_revision.partition("@")
    if not _REPO_PART.match(owner) or not _REPO_PART.match(name) or ".." in inner.split("/"):
        raise InputError(f"{path}: not a dataset id (hf://datasets/<owner>/<name>[@<revision>][/<path>])")
    return f"{owner}/{name}", revision or None, inner


def resolve_hf_dataset(path: str) -> str:
    """The local path (a snapshot folder, or a file, folder or glob inside it) that `path` names."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo_id, revision, inner = split_hf_dataset(path)
    wanted = None
    if inner:
        # A folder fetches what is under it; a file or glob itself.
        wanted = [inner, f"{inner}/*"] if not any(c in inner for c in "*?[") else [inner]
    try:
        snapshot = snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=wanted)
    except LocalEntryNotFoundError as exc:
        raise InputError(f"{path}: not in the Hugging Face cache and the Hub cannot be reached; fetch it "
                         f"first with `huggingface-cli download --repo-type dataset {repo_id}`") from exc
    except RepositoryNotFoundError as exc:
        raise InputError(f"{path}: no dataset {repo_id} on the Hub (or it is private: set HF_TOKEN)") from exc
    except HfHubHTTPError as exc:
        raise InputError(f"{path}: the Hub answered {exc}") from exc
    local = os.path.join(snapshot, inner) if inner else snapshot
    if not inner or any(c in inner for c in "*?[") or os.path.exists(local) or glob.glob(local):
        return local
    raise InputError(f"{path}: no file or folder {inner!r} in {repo_id}"
                     f"{'@' + revision if revision else ''}")
