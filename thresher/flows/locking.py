"""`writes_run`: a flow that writes run directories holds their writer locks while it runs
(thresher.storage.run_lock), and a flow that fails records its running stages as failed in run.json."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from thresher.storage.run_dir import RunDir
from thresher.storage.run_lock import writer_lock


def writes_run(runs: str | Callable[[dict[str, Any]], list[str | None]]) -> Callable:
    """Decorate a flow function (under `@flow`): `runs` names its run-directory parameter, or maps its
    bound arguments to the run directories it writes (None entries are ignored)."""
    locate = (lambda arguments: [arguments[runs]]) if isinstance(runs, str) else runs

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            roots = list(dict.fromkeys(str(r) for r in locate(bound.arguments) if r is not None))
            with ExitStack() as stack:
                for root in roots:
                    stack.enter_context(writer_lock(root))
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    # run.json must not say "running" for a stage that died with an error
                    for root in roots:
                        RunDir(root).fail_running_stages(f"{type(exc).__name__}: {exc}")
                    raise

        # Prefect validates parameters against the annotations, which `from __future__ import annotations`
        # leaves as strings to resolve in the flow's module, not this one: hand it resolved ones.
        wrapper.__signature__ = inspect.signature(fn, eval_str=True)
        wrapper.__annotations__ = typing.get_type_hints(fn)
        return wrapper

    return decorate
