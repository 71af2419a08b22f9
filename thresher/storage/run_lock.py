"""One writer per run directory.

A flow that writes a run holds `<run>/.writer.lock` with an exclusive `flock` for as long as it runs;
a second writer (another `thresher curate`, a scheduled deployment) fails at once with a clear error
naming the holder. Readers (`thresher sql`, the dashboard) never take it, so they never block a writer.

Stale locks: the kernel drops an flock when its process exits, however it exits (SIGKILL included),
so a lock file whose flock can be taken is stale by definition, whatever holder it still names; the
next writer simply takes it. (flock is advisory and per host: on a network filesystem that does not
support it, two hosts could both get it; run each run directory's writers on one host.)

The lock is re-entrant within a process: `curate` holds it and its sub-flows take it again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".writer.lock"


class RunLocked(RuntimeError):
    """Another process is writing this run directory."""


_held: dict[Path, tuple[int, int]] = {}  # run root -> (file descriptor, depth)
_held_guard = threading.Lock()


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']} ({info['command']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def writer_lock(root: str | Path) -> Iterator[None]:
    """Hold the run directory's writer lock for the block (creating the directory if needed)."""
    root = Path(root).expanduser().resolve()
    with _held_guard:
        if root in _held:
            fd, depth = _held[root]
            _held[root] = (fd, depth + 1)
        else:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunLocked(f"{root} is being written by {holder}: wait for it to finish, "
                                "or write to another run directory") from None
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
            _held[root] = (fd, 1)
    try:
        yield
    finally:
        with _held_guard:
            fd, depth = _held[root]
            if depth > 1:
                _held[root] = (fd, depth - 1)
            else:
                del _held[root]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
