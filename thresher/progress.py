"""Progress reporting that flows emit and front ends render.

Flows report shard completions through `stage_progress`; by default nothing is shown (library
use, tests, deployments), and the CLI installs a rich progress display with `show_progress`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StageBar(Protocol):
    def advance(self, rows: int) -> None: ...


class _Silent:
    def advance(self, rows: int) -> None:
        pass


class _RichBar:
    def __init__(self, progress: Progress, task_id, unit: str):
        self._progress, self._task_id, self._unit, self._rows = progress, task_id, unit, 0

    def advance(self, rows: int) -> None:
        self._rows += rows
        self._progress.update(self._task_id, advance=1, rows=f"{self._rows:,} {self._unit}")


_progress: Progress | None = None


@contextlib.contextmanager
def show_progress(console: Console | None = None) -> Iterator[None]:
    """Render every stage's progress on `console` while the block runs."""
    global _progress
    progress = Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[jobs]}"),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=console,
    )
    previous, _progress = _progress, progress
    try:
        with progress:
            yield
    finally:
        _progress = previous


@contextlib.contextmanager
def stage_progress(label: str, total_shards: int, unit: str = "rows", jobs: str = "shards") -> Iterator[StageBar]:
    """A bar of `total_shards` jobs (named `jobs`: shards, models, ...) that also counts `unit`s done."""
    if _progress is None:
        yield _Silent()
        return
    task_id = _progress.add_task(label, total=total_shards, rows="", jobs=jobs)
    yield _RichBar(_progress, task_id, unit)
