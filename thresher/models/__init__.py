"""Language-model plumbing: resolving model references to local directories (no downloads)."""

from thresher.models.resolve import (
    PACKAGED_MODELS,
    ModelResolveError,
    ModelSource,
    convert_gguf,
    locate_model,
    model_cache_dir,
    resolve_model,
)

__all__ = [
    "PACKAGED_MODELS",
    "ModelResolveError",
    "ModelSource",
    "convert_gguf",
    "locate_model",
    "model_cache_dir",
    "resolve_model",
]
