"""Stopping long work promptly when a command is interrupted (SIGTERM, Ctrl-C).

Prefect turns SIGTERM into an exception in the flow's thread (Ctrl-C is a KeyboardInterrupt there),
but its thread-pool task runner then waits for every running task to finish: a judge task over a
5,000-row shard kept judging for an hour after `kill`. The flow's driver loop
(`thresher.flows.mapping.map_cached`) calls `request_stop()` when it sees the interruption, and the
long loops inside tasks (a judge's model batches, a score pass's record batches) call
`raise_if_stop_requested()` between batches. What they finished is kept: judgments are committed
per batch, a sidecar is written atomically or not at all, so the same command resumes.

Process-based runners (Dask, `processes`) stop their workers themselves; this covers the threads
of the driver's process.
"""

from __future__ import annotations

import threading

_stop = threading.Event()


class Interrupted(Exception):
    """A task gave up between batches because the command was interrupted."""


def request_stop() -> None:
    """Ask every task of this process to stop at its next batch boundary."""
    _stop.set()


def clear_stop() -> None:
    """Forget an earlier request: a new flow run in a long-lived process starts unhindered."""
    _stop.clear()


def raise_if_stop_requested() -> None:
    if _stop.is_set():
        raise Interrupted("interrupted: stopped between batches; what finished is kept, run the command again "
                          "to resume")
