"""Real servers the LLM tests talk to: start a process on 127.0.0.1, wait for its health URL, stop it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(command: list[str], port: int, log: Path, *, name: str, env: dict | None = None,
                   health: str = "/health", timeout: float = 180) -> Iterator[str]:
    """Run `command` (a server listening on 127.0.0.1:`port`, output to `log`) and yield its root URL
    once `health` answers; the test fails with the log's tail if it never does. Terminated on exit."""
    from thresher.llm.openai_http import wait_for_server

    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    root = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_server(root, timeout=timeout, path=health)
        except Exception:
            pytest.fail(f"{name} did not start: {log.read_text(errors='replace')[-2000:]}")
        yield root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
