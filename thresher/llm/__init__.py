"""Language-model backends behind one protocol (see `thresher.llm.protocol`).

Judges hold a `BackendSpec` (a small frozen, picklable value: backend kind, model reference,
options) and call `get_backend(spec)` on first use; the backend is built once per process and
shared by every judge that names the same spec, so a worker loads each model once.

Kinds: "transformers" (local, CPU/CUDA), "openai" (any OpenAI-compatible server), "llama_cpp" and
"vllm" (optional, import-guarded: naming them without the package installed is a clear error).
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thresher.llm.protocol import (
    CandidateLogprobs,
    Capability,
    CapabilityError,
    Chat,
    ContinuationScore,
    Generation,
    GenerationParams,
    LMBackend,
    LMError,
    LMTimeoutError,
    Message,
    require,
)
from thresher.models.loaded import on_release

BACKEND_KINDS: dict[str, str] = {
    "transformers": "thresher.llm.transformers_backend:TransformersBackend",
    "openai": "thresher.llm.openai_http:OpenAIHTTPBackend",
    "llama_cpp": "thresher.llm.llama_cpp_backend:LlamaCppBackend",
    "vllm": "thresher.llm.vllm_backend:VLLMBackend",
}


@dataclass(frozen=True)
class BackendSpec:
    """Which backend to build: `kind`, the model reference, and keyword options for its class
    (e.g. {"base_url": "http://127.0.0.1:8000/v1", "concurrency": 16} for "openai")."""

    kind: str = "transformers"
    model: str = "qwen2.5-coder-0.5b-instruct"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in BACKEND_KINDS:
            raise ValueError(f"unknown backend kind {self.kind!r}; known: {', '.join(sorted(BACKEND_KINDS))}")
        object.__setattr__(self, "options", dict(self.options))

    def key(self) -> str:
        return json.dumps([self.kind, self.model, dict(self.options)], sort_keys=True, default=str)

    def __hash__(self) -> int:
        return hash(self.key())

    def build(self) -> LMBackend:
        module, _, attr = BACKEND_KINDS[self.kind].partition(":")
        cls = getattr(importlib.import_module(module), attr)
        try:
            return cls(self.model, **dict(self.options))
        except TypeError as exc:
            raise ValueError(f"bad options for backend {self.kind!r}: {exc}") from None


_backends: dict[str, LMBackend] = {}
_registered: set[str] = set()  # keys of backends handed in by register_backend: never released here
_backends_lock = threading.Lock()


def get_backend(spec: BackendSpec) -> LMBackend:
    """The process-wide backend for `spec`, built on first use."""
    key = spec.key()
    backend = _backends.get(key)
    if backend is None:
        with _backends_lock:
            backend = _backends.get(key)
            if backend is None:
                backend = spec.build()
                _backends[key] = backend
    return backend


def register_backend(spec: BackendSpec, backend: LMBackend) -> None:
    """Make `get_backend(spec)` return an existing backend object (tests, notebooks)."""
    with _backends_lock:
        _backends[spec.key()] = backend
        _registered.add(spec.key())


def release_backend(spec: BackendSpec) -> None:
    """Close and forget the backend built for `spec`, if any (not one handed in by `register_backend`)."""
    key = spec.key()
    with _backends_lock:
        if key in _backends and key not in _registered:
            _backends.pop(key).close()


def release_backends() -> None:
    """Close and forget every backend this process built (`get_backend` builds it again on next use);
    a backend handed in by `register_backend` stays, since nothing could rebuild it."""
    with _backends_lock:
        for key in [k for k in _backends if k not in _registered]:
            _backends.pop(key).close()


on_release(release_backends)


__all__ = [
    "BACKEND_KINDS",
    "BackendSpec",
    "CandidateLogprobs",
    "Capability",
    "CapabilityError",
    "Chat",
    "ContinuationScore",
    "Generation",
    "GenerationParams",
    "LMBackend",
    "LMError",
    "LMTimeoutError",
    "Message",
    "get_backend",
    "register_backend",
    "release_backend",
    "release_backends",
    "require",
]
