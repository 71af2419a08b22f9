"""The dashboard: a server-rendered FastAPI app over one run's catalog, opened read-only per request.

Pages: `/` (overview) and `/<panel>` for every registered panel (see `panels.PANELS`), each with
query parameters for its controls. JSON: `/api/panels`, `/api/overview`, `/api/funnels`, `/api/scores`,
`/api/histogram`, `/api/bands`, `/api/samples`, `/api/quarantine`. Funnels and histograms are per data
table (documents, instructions): shares are within one table, never of both together. Plotly's JavaScript is served
from the installed plotly package at `/static/plotly.min.js`; nothing is fetched from the network.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from thresher.dashboards import data as d
from thresher.dashboards import panels as p
from thresher.storage.run_dir import RunDir

_STATUS = {d.NotFound: 404, d.InvalidParameter: 400, d.CatalogUnavailable: 503}


@lru_cache(maxsize=1)
def plotly_js() -> bytes:
    return importlib.resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def create_app(run_dir: str | Path | RunDir) -> FastAPI:
    """The dashboard app for one run directory. It only reads: every request opens the catalog
    read-only (sandboxed to the run directory) and closes it before answering."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    app = FastAPI(title=f"thresher dashboard: {run.root.name}", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.run = run

    def error_page(status: int, message: str) -> HTMLResponse:
        body = f'<section class="panel"><h2>{status}</h2><div class="error">{p.h(message)}</div>' \
               f'<p><a href="/">overview</a></p></section>'
        html = p.page(title=f"{status} · thresher", run_name=run.root.name, run_root=str(run.root), nav_html="",
                      body=body, head="")
        return HTMLResponse(html, status_code=status)

    def render_panel(key: str, params: dict[str, str]) -> HTMLResponse:
        try:
            panel = p.get_panel(key)
            ctx = p.RenderContext(static=False)
            with d.read_catalog(run) as cat:
                body = p.not_in_run(panel) if not panel.applies(cat) else panel.render(cat, ctx, params)
                nav = p.nav(cat, ctx, key)
                name = d.run_name(run)
            html = p.page(title=f"{panel.title} · {name} · thresher", run_name=name, run_root=str(run.root),
                          nav_html=nav, body=p.section(panel, body),
                          head='<script src="/static/plotly.min.js"></script>')
            return HTMLResponse(html)
        except (d.NotFound, d.InvalidParameter, d.CatalogUnavailable) as exc:
            return error_page(_STATUS[type(exc)], str(exc))

    def api(fn) -> Response:
        try:
            with d.read_catalog(run) as cat:
                return JSONResponse(_jsonable(fn(cat)))
        except (d.NotFound, d.InvalidParameter, d.CatalogUnavailable) as exc:
            return JSONResponse({"error": str(exc)}, status_code=_STATUS[type(exc)])

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def static_plotly() -> Response:
        return Response(plotly_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/panels")
    def api_panels() -> Response:
        return api(lambda cat: [{"key": x.key, "title": x.title, "description": x.description,
                                 "in_run": x.applies(cat), "needs": x.needs} for x in p.PANELS])

    @app.get("/api/overview")
    def api_overview() -> Response:
        """The run, the reconciliation of every table together, and one funnel per table."""
        return api(lambda cat: {"run": d.run_summary(cat), "funnel": d.funnel(cat), "funnels": d.funnels(cat)})

    @app.get("/api/funnels")
    def api_funnels() -> Response:
        """{table: funnel}, each step's `share` of that table's rows in."""
        return api(d.funnels)

    @app.get("/api/scores")
    def api_scores() -> Response:
        """Every score view and its numeric columns."""
        return api(d.score_columns)

    @app.get("/api/histogram")
    def api_histogram(view: str, column: str, bins: Annotated[int, Query(ge=2, le=500)] = 40,
                      table: str | None = None) -> Response:
        """One table's histogram with `table`; without it, one series per table the view holds
        ({"tables": {table: histogram}}), never the tables binned together."""
        def one(cat: d.Catalog, name: str) -> dict:
            hist = d.histogram(cat, view, column, bins=bins, table=name)
            return {**_jsonable(hist), "edges": hist.edges}

        def fn(cat: d.Catalog) -> Any:
            if table is not None:
                return one(cat, table)
            cat.column(view, column)  # a 404 for an unknown view or column, before any split
            return {"view": view, "column": column, "tables": {t: one(cat, t) for t in d.view_tables(cat, view)}}
        return api(fn)

    @app.get("/api/bands")
    def api_bands(view: str, column: str, n: Annotated[int, Query(ge=1, le=20)] = 5,
                  table: str | None = None) -> Response:
        return api(lambda cat: d.score_bands(cat, view, column, n, table=table))

    @app.get("/api/samples")
    def api_samples(view: str, column: str, lo: float | None = None, hi: float | None = None,
                    page: Annotated[int, Query(ge=1)] = 1, per_page: Annotated[int, Query(ge=1, le=100)] = 10,
                    order: str = "random", seed: Annotated[int, Query(ge=0)] = 0,
                    max_chars: Annotated[int, Query(ge=1, le=20_000)] = 4000) -> Response:
        return api(lambda cat: d.samples(cat, view, column, lo, hi, page=page, per_page=per_page, order=order,
                                         seed=seed, max_chars=max_chars))

    @app.get("/api/quarantine")
    def api_quarantine(reason: str | None = None, page: Annotated[int, Query(ge=1)] = 1,
                       per_page: Annotated[int, Query(ge=1, le=100)] = 25) -> Response:
        return api(lambda cat: d.quarantine_page(cat, reason, page=page, per_page=per_page))

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        return render_panel("overview", dict(request.query_params))

    @app.get("/{key}", response_class=HTMLResponse)
    def panel_page(key: str, request: Request) -> HTMLResponse:
        return render_panel(key, dict(request.query_params))

    return app


def serve(run_dir: str | Path | RunDir, host: str = "127.0.0.1", port: int = 8765, *,
          log_level: str = "warning") -> None:
    """Serve the dashboard with uvicorn until interrupted."""
    import uvicorn

    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    with d.read_catalog(run):  # fail now, not on the first request, when there is no catalog
        pass
    uvicorn.run(create_app(run), host=host, port=port, log_level=log_level)
