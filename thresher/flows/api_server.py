"""A long-lived local Prefect API server that every thresher command finds and reuses.

Without a configured API, Prefect starts a temporary server for each process that runs a flow:
about 9-15 s on 2 cores (importing the server, migrating its SQLite database), paid again by every
`thresher score`, `thresher dedup`, ... even when every task is a cache hit. `thresher server start`
starts one server with Prefect's own `prefect server start --background` (so `prefect server stop`
works too) on 127.0.0.1 and records its address next to Prefect's PID file; from then on each
thresher command points Prefect at it before Prefect is imported, which costs one local HTTP
request.

A command uses the recorded server only when nothing else is configured (no `PREFECT_API_URL` in
the environment or the active Prefect profile), the server answers its health check, and it runs
the same Prefect version as this environment. Otherwise Prefect's usual behaviour applies.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STATE_FILE_NAME = "thresher-server.json"
PREFECT_PID_FILE_NAME = "server.pid"  # Prefect's own name for its background server's PID file
DEFAULT_PORT = 4200
HEALTH_TIMEOUT_S = 0.5


class ServerError(RuntimeError):
    """The background server could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class ServerState:
    api_url: str
    pid: int | None
    prefect_version: str

    def to_json(self) -> dict:
        return {"api_url": self.api_url, "pid": self.pid, "prefect_version": self.prefect_version}


def prefect_home() -> Path:
    """PREFECT_HOME without importing Prefect (its settings load takes ~1 s)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def prefect_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("prefect")


def _state_path() -> Path:
    return prefect_home() / STATE_FILE_NAME


def read_state() -> ServerState | None:
    try:
        data = json.loads(_state_path().read_text(encoding="utf-8"))
        return ServerState(str(data["api_url"]), data.get("pid"), str(data["prefect_version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def healthy(api_url: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    """True when a Prefect API answers at `api_url` (its /health endpoint returns true)."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"true"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _profile_api_url() -> bool:
    """Whether the active Prefect profile sets an API URL (read from profiles.toml, not by importing Prefect)."""
    import tomllib

    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or prefect_home() / "profiles.toml")
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return bool((profiles.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL"))


def _prefect_imported() -> bool:
    return "prefect" in sys.modules


def use_running_server() -> str | None:
    """Point this process (and the processes it starts) at the recorded server when nothing else is
    configured and the server is up; returns the API URL it chose, or None."""
    if os.environ.get("PREFECT_API_URL") or _prefect_imported():
        return None  # configured already, or too late: Prefect read its settings at import
    state = read_state()
    if state is None or state.prefect_version != prefect_version() or _profile_api_url():
        return None
    if not healthy(state.api_url):
        return None
    os.environ["PREFECT_API_URL"] = state.api_url
    return state.api_url


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _write_state(state: ServerState) -> None:
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state.to_json()), encoding="utf-8")
    tmp.replace(path)


def start_server(port: int = DEFAULT_PORT, timeout_s: float = 120.0) -> tuple[ServerState, bool]:
    """Start the background server (or find the one already recorded and up). Returns its state and
    whether this call started it."""
    state = read_state()
    if state is not None and healthy(state.api_url):
        return state, False
    if not _port_free(port):
        raise ServerError(f"port {port} on 127.0.0.1 is in use; pick another with --port")
    # A PID file left by a server that died would make Prefect refuse to start; `prefect server stop`
    # removes a stale one (and stops a live one this module did not record).
    if (prefect_home() / PREFECT_PID_FILE_NAME).exists():
        _prefect_cli("server", "stop")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = prefect_home() / "thresher-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        done = subprocess.run([sys.executable, "-m", "prefect", "server", "start", "--background", "--host",
                               "127.0.0.1", "--port", str(port), "--analytics-off"],
                              stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise ServerError(f"`prefect server start --background` failed (exit {done.returncode}); see {log}")
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout_s
    while not healthy(api_url):
        if time.monotonic() > deadline:
            _prefect_cli("server", "stop")
            raise ServerError(f"the Prefect server did not answer at {api_url} within {timeout_s:.0f} s; see {log}")
        time.sleep(0.2)
    state = ServerState(api_url, _read_pid(), prefect_version())
    _write_state(state)
    return state, True


def _read_pid() -> int | None:
    try:
        return int((prefect_home() / PREFECT_PID_FILE_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def _prefect_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefect", *args], capture_output=True, text=True, check=False)


def stop_server() -> ServerState | None:
    """Stop the recorded background server; returns what was recorded (None when nothing was)."""
    state = read_state()
    if state is None and not (prefect_home() / PREFECT_PID_FILE_NAME).exists():
        return None
    done = _prefect_cli("server", "stop")
    if done.returncode != 0:
        raise ServerError(f"`prefect server stop` failed: {(done.stderr or done.stdout).strip()}")
    _state_path().unlink(missing_ok=True)
    return state
