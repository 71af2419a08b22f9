"""`thresher server start|stop|status` and the commands that find the background server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from thresher.flows import api_server

THRESHER = [sys.executable, "-m", "thresher.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    return {**env, "PREFECT_HOME": str(home), "COLUMNS": "200"}


def _flow_run_names(api_url: str) -> list[str]:
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.loads(response.read())
    flows = {}
    for run in runs:
        with urllib.request.urlopen(f"{api_url}/flows/{run['flow_id']}", timeout=10) as response:
            flows[run["flow_id"]] = json.loads(response.read())["name"]
    return sorted(flows[r["flow_id"]] for r in runs)


def test_commands_reuse_the_background_server_instead_of_a_temporary_one(tmp_path):
    home, port = tmp_path / "prefect-home", _free_port()
    env = _env(home)
    started = subprocess.run([*THRESHER, "server", "start", "--port", str(port)], env=env, capture_output=True,
                             text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        assert api_url in started.stdout
        status = subprocess.run([*THRESHER, "server", "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and api_url in status.stdout
        again = subprocess.run([*THRESHER, "server", "start", "--port", str(port)], env=env, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 0 and "already running" in again.stdout

        inputs = tmp_path / "docs.jsonl"
        inputs.write_text("".join(json.dumps({"text": f"document number {i} with a few words"}) + "\n"
                                  for i in range(20)), encoding="utf-8")
        ingest = subprocess.run([*THRESHER, "ingest", str(tmp_path / "run"), str(inputs)], env=env,
                                capture_output=True, text=True, timeout=300)
        assert ingest.returncode == 0, ingest.stderr
        # No temporary server: the flow run is in the background server's database.
        assert "Starting temporary server" not in ingest.stdout + ingest.stderr
        assert "thresher-ingest" in _flow_run_names(api_url)
    finally:
        stopped = subprocess.run([*THRESHER, "server", "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not api_server.healthy(api_url)
    gone = subprocess.run([*THRESHER, "server", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 1 and "no background server" in gone.stdout


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """A state file that points at a server this test controls (a real HTTP server answering /health)."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = b"true" if self.path == "/api/health" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    api_url = f"http://127.0.0.1:{server.server_address[1]}/api"
    api_server._write_state(api_server.ServerState(api_url, None, api_server.prefect_version()))
    # use_running_server refuses once Prefect is imported (as it is in this process): pretend it is not.
    monkeypatch.setattr(api_server, "_prefect_imported", lambda: False)
    yield api_url
    server.shutdown()


def test_a_healthy_recorded_server_is_used(recorded, monkeypatch):
    assert api_server.use_running_server() == recorded
    assert os.environ["PREFECT_API_URL"] == recorded


def test_a_configured_api_wins(recorded, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    assert api_server.use_running_server() is None
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:1/api"


def test_a_profile_api_wins(recorded, tmp_path, monkeypatch):
    (tmp_path / "profiles.toml").write_text('active = "remote"\n[profiles.remote]\n'
                                            'PREFECT_API_URL = "http://127.0.0.1:1/api"\n', encoding="utf-8")
    assert api_server.use_running_server() is None


def test_anotherprefect_version_or_a_dead_server_is_not_used(recorded, monkeypatch):
    state = api_server.read_state()
    api_server._write_state(api_server.ServerState(state.api_url, None, "0.0.1"))
    assert api_server.use_running_server() is None
    api_server._write_state(api_server.ServerState(f"http://127.0.0.1:{_free_port()}/api", None,
                                                   api_server.prefect_version()))
    assert api_server.use_running_server() is None
    assert "PREFECT_API_URL" not in os.environ
