"""The panel registry: a panel is a key, a title, a test over the catalog (`applies`: which views
it needs) and a `render(catalog, context, params) -> html` function. The app serves every
registered panel at `/<key>`; the report renders each one once, statically. A later stage plugs a
panel in with `register_panel(Panel(...))`: the navigation lists it, and it says "not in this run"
until a run has the views it looks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from thresher.dashboards.catalog import Catalog, NotFound
from thresher.dashboards.widgets import Params, RenderContext, h

Renderer = Callable[[Catalog, RenderContext, Params], str]


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    description: str
    needs: str  # what the run must have, said when it does not
    applies: Callable[[Catalog], bool]
    render: Renderer


PANELS: list[Panel] = []


def register_panel(panel: Panel) -> Panel:
    """Add (or replace, by key) a panel; the app and the report pick it up."""
    for i, existing in enumerate(PANELS):
        if existing.key == panel.key:
            PANELS[i] = panel
            return panel
    PANELS.append(panel)
    return panel


def get_panel(key: str) -> Panel:
    for panel in PANELS:
        if panel.key == key:
            return panel
    raise NotFound(f"no panel {key!r}")


def not_in_run(panel: Panel) -> str:
    return f'<div class="absent"><strong>Not in this run.</strong> {h(panel.needs)}</div>'



def nav(cat: Catalog, ctx: RenderContext, active: str | None) -> str:
    items = []
    for panel in PANELS:
        if panel.applies(cat):
            css = ' class="active"' if panel.key == active else ""
            items.append(f'<a href="{h(ctx.link(panel.key))}"{css}>{h(panel.title)}</a>')
        else:
            items.append(f'<span class="absent" title="not in this run">{h(panel.title)}</span>')
    return "<nav>" + "".join(items) + "</nav>"



def section(panel: Panel, body: str) -> str:
    return (f'<section class="panel" id="{h(panel.key)}"><h2>{h(panel.title)}</h2>'
            f'<p class="note">{h(panel.description)}</p>{body}</section>')
