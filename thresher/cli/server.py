"""`thresher server start|stop|status`: one long-lived local Prefect API for every command."""

from __future__ import annotations

from typing import Annotated

import typer

from thresher.cli.console import console, fail

app = typer.Typer(no_args_is_help=True)


@app.command()
def start(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 4200,
    timeout: Annotated[float, typer.Option(min=1, help="seconds to wait for the server to answer")] = 120.0,
) -> None:
    """Start a Prefect server in the background (`prefect server start --background`) that every later
    thresher command uses instead of starting a temporary one (~10 s each); the UI is at its address."""
    from thresher.flows.api_server import ServerError, start_server

    try:
        state, started = start_server(port, timeout)
    except ServerError as exc:
        fail(str(exc))
    verb = "started" if started else "already running"
    console.print(f"Prefect server {verb} at {state.api_url} (UI: {state.api_url.removesuffix('/api')})")
    console.print("thresher commands use it while it runs and nothing else is configured; `thresher server stop` "
                  "stops it")


@app.command()
def stop() -> None:
    """Stop the background Prefect server that `thresher server start` started."""
    from thresher.flows.api_server import ServerError, stop_server

    try:
        state = stop_server()
    except ServerError as exc:
        fail(str(exc))
    console.print(f"stopped the Prefect server at {state.api_url}" if state else "no background server was running")


@app.command()
def status() -> None:
    """Say whether a background server is recorded and answering, and which API commands will use.
    Exit status 1 when none is up."""
    import os

    from thresher.flows.api_server import healthy, prefect_version, read_state

    state = read_state()
    up = state is not None and healthy(state.api_url)
    configured = os.environ.get("PREFECT_API_URL")
    if up:
        same = state.prefect_version == prefect_version()
        console.print(f"running at {state.api_url} (pid {state.pid}, Prefect {state.prefect_version}"
                      + ("" if same else f"; this environment has Prefect {prefect_version()}, so it is not used")
                      + ")")
    else:
        console.print("no background server is running" + (" (a stale record was left; `thresher server start` "
                                                           "replaces it)" if state else ""))
    if configured and not (state and configured == state.api_url):
        console.print(f"commands use PREFECT_API_URL={configured}")
    raise typer.Exit(code=0 if up else 1)
