"""The one place that runs a flow (or any long call) for a command and turns the errors a user can
act on into one `error: …` line and exit status 2. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from thresher.cli.console import console, fail

T = TypeVar("T")

LogLevel = Annotated[str, typer.Option("--log-level", help="Prefect log level on the console")]


def prefect_logging(level: str) -> None:
    """Set Prefect's console log level; must run before Prefect is imported (it reads settings then)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level.upper())


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by what the user gave (a recipe, an input, a model, a catalog) or by a backend
    that failed: they get a clear message, not a traceback. Imported on demand so that a command
    loads only what it uses."""
    from thresher.dashboards.data import CatalogUnavailable
    from thresher.llm.protocol import LMError
    from thresher.perplexity.train_kenlm import KenLMTrainingError
    from thresher.storage.readers import InputError
    from thresher.storage.run_lock import RunLocked

    # ValueError covers ConfigError, pydantic's ValidationError and every stage's *Error(ValueError).
    return (ValueError, FileNotFoundError, InputError, LMError, KenLMTrainingError, CatalogUnavailable, RunLocked)


def run_flow(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` with the stage progress bars shown; a user error ends the command with `error: …`."""
    from thresher.progress import show_progress

    try:
        with show_progress(console):
            return fn(*args, **kwargs)
    except user_errors() as exc:
        # A backend's failure (LMError, a RuntimeError) is named: "LMTimeoutError: ..." says what broke.
        fail(f"{type(exc).__name__}: {exc}" if isinstance(exc, RuntimeError) else str(exc))
        raise  # unreachable: fail exits
