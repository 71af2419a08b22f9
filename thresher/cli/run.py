"""The one place that runs a flow (or any long call) for a command and turns the errors a user can
act on into one `error: …` line (and at most one `hint: …` line) with exit status 2.

Tracebacks: Prefect's engine logs every failure with its traceback at ERROR, once for the task run
and once more for the flow run. Those records keep going to Prefect's API log handler (the flow-run
logs in the UI keep the full traceback) but are dropped from the console handler, so a user error
prints only thresher's lines. `thresher --debug` (or THRESHER_DEBUG=1) prints the traceback of a
user error once, above its `error:` line. Anything that is not a user error is a bug: it escapes
with its traceback (printed once, by Typer), whatever --debug says, because a bug report needs it."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from thresher.cli.console import console, fail

T = TypeVar("T")

LogLevel = Annotated[str, typer.Option("--log-level", help="Prefect log level on the console")]

DEBUG_ENV = "THRESHER_DEBUG"


def prefect_logging(level: str) -> None:
    """Set Prefect's console log level; must run before Prefect is imported (it reads settings then)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level.upper())


def debug_enabled() -> bool:
    """Whether `--debug` or THRESHER_DEBUG asks for tracebacks (an environment variable, so that the
    global flag reaches every command and any process a command starts)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by what the user gave (a recipe, an input, a model, a catalog) or by a backend
    that failed: they get a clear message, not a traceback. Imported on demand so that a command
    loads only what it uses."""
    from thresher.dashboards.data import CatalogUnavailable
    from thresher.llm.protocol import LMError
    from thresher.perplexity.train_kenlm import KenLMTrainingError
    from thresher.storage.file_errors import StoreUnavailable
    from thresher.storage.readers import InputError
    from thresher.storage.run_lock import RunLocked

    # ValueError covers ConfigError, pydantic's ValidationError and every stage's *Error(ValueError).
    return (ValueError, FileNotFoundError, InputError, StoreUnavailable, LMError, KenLMTrainingError,
            CatalogUnavailable, RunLocked)


class _EngineFailures(logging.Filter):
    """Drops the failure records of Prefect's flow and task engines (ERROR and above, logged from a
    module of the `prefect` package on the run loggers); a stage's own log lines pass."""

    RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")

    def __init__(self, prefect_dir: Path) -> None:
        super().__init__()
        self.prefect_dir = str(prefect_dir) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.name in self.RUN_LOGGERS
                    and record.pathname.startswith(self.prefect_dir))


def quiet_prefect_failures() -> None:
    """Install `_EngineFailures` on Prefect's console handler (only there: the API handler sits on
    the run loggers themselves and still receives the records). Idempotent, for in-process tests."""
    if "prefect" not in sys.modules:
        return  # no flow runs in this command: Prefect is imported by a command before its flow
    import prefect
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    # Set up now rather than when the flow starts, so the handler exists to be filtered.
    ensure_logging_setup()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, _EngineFailures) for f in handler.filters):
            handler.addFilter(_EngineFailures(Path(prefect.__file__).resolve().parent))


# DuckDB appends the query with a caret under the culprit ("LINE 1: SELECT …" then "   ^^^"): it
# needs the original line breaks to make sense, so the one-line error leaves it out (--debug shows it).
_QUERY_EXCERPT = re.compile(r"^(LINE \d+:|\^+$)")
# Lines that say how to fix the error rather than what it is: the hint.
_HINT_LINE = re.compile(r"^(Candidate bindings|Did you mean)", re.IGNORECASE)


def error_lines(exc: BaseException) -> tuple[str, str | None]:
    """The one-line error and the optional hint for a user error.

    A multi-line message (a recipe's list of problems, a DuckDB error) is joined with "; " so that
    a script reading stderr gets one line per failure."""
    # A backend's failure (LMError, a RuntimeError) is named: "LMTimeoutError: ..." says what broke.
    message = f"{type(exc).__name__}: {exc}" if isinstance(exc, RuntimeError) else str(exc)
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not _QUERY_EXCERPT.match(line)]
    hints = [line for line in kept if _HINT_LINE.match(line)]
    error = "; ".join(line for line in kept if line not in hints) or type(exc).__name__
    return error, "; ".join(hints) or _hint_for(exc)


def _hint_for(exc: BaseException) -> str | None:
    # Looked up, not imported: an UnknownScorerError exists only if its module was loaded.
    registry = sys.modules.get("thresher.scorers.registry")
    if registry is not None and isinstance(exc, registry.UnknownScorerError):
        return "`thresher scorers` lists every scorer with its parameters"
    return None


def fail_on(exc: BaseException) -> NoReturn:
    """A user error caught outside `run_flow` (a pydantic or DuckDB error), as one line and a hint."""
    fail(*error_lines(exc))


INTERRUPTED = "interrupted: what finished is kept; run the same command again to resume"


def _exit_interrupted(signum: int) -> NoReturn:
    print(f"\n{INTERRUPTED}", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM ends the command like Ctrl-C does: through Python's exit, so that atexit handlers
    stop Prefect's temporary server (the default action would leave it running, orphaned)."""
    _exit_interrupted(signum)


def run_flow(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` with the stage progress bars shown; a user error ends the command with `error: …`.

    Interrupted (SIGTERM, Ctrl-C), running tasks stop at their next batch (thresher.interrupt) and
    the command exits with 128 + the signal's number; Prefect's flow engine turns SIGTERM into an
    exception during the flow and sends it again to this handler afterwards."""
    from thresher.progress import show_progress

    quiet_prefect_failures()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:
        with show_progress(console):
            return fn(*args, **kwargs)
    except KeyboardInterrupt:
        _exit_interrupted(signal.SIGINT)
    except user_errors() as exc:
        if debug_enabled():
            traceback.print_exc(file=sys.stderr)  # plain text: whole lines, greppable, whatever the width
        fail_on(exc)
    finally:
        if previous is not None:  # a caller in the same process (a test, a notebook) keeps its own handler
            signal.signal(signal.SIGTERM, previous)


def print_version(value: bool) -> None:
    if value:
        import importlib.metadata

        typer.echo(f"thresher {importlib.metadata.version('thresher')}")
        raise typer.Exit()


def global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="on an error, print its full traceback (also: THRESHER_DEBUG=1)")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=print_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """Options before the command: `thresher --debug curate ...`, `thresher --version`."""
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by run_flow; an environment variable reaches child processes too
    # Before any command imports Prefect, which reads its settings once: a server that `thresher server
    # start` left running saves this command the ~10 s start of a temporary one.
    from thresher.flows.api_server import use_running_server

    use_running_server()

