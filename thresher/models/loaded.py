"""Models a process keeps loaded between calls, and one call that lets them all go.

Stages load their models once per process (an LM backend, a KenLM file, a fastText classifier, a
sentence encoder) because their tasks call them shard after shard. A command that runs one stage
exits afterwards; `curate` runs every stage in one process, where a judge's 2 GB would otherwise
stay resident through embeddings, evaluation and augmentation. Each cache registers how to forget
its models with `on_release`; `release_models()` (called by `curate` between stages) forgets them
all, collects the garbage and asks Arrow's allocator and glibc to hand freed pages back to the OS
(`release_unused`, `malloc_trim`: without them freed memory stays counted in the process's RSS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Callable

_releasers: list[Callable[[], None]] = []
_lock = threading.Lock()


def on_release(forget: Callable[[], None]) -> Callable[[], None]:
    """Register `forget` (drops one cache's models) to run on `release_models()`; returns it."""
    with _lock:
        if forget not in _releasers:
            _releasers.append(forget)
    return forget


def release_models() -> None:
    """Forget every registered cache's models and return their memory to the OS where possible."""
    with _lock:
        releasers = list(_releasers)
    for forget in releasers:
        forget()
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # Arrow's allocator (mimalloc/jemalloc) keeps freed pages
    _trim_heap()


def _trim_heap() -> None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):  # glibc only; musl and macOS have no such call
            libc.malloc_trim(0)
    except OSError:
        pass
