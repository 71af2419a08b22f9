"""HTML building blocks shared by every panel: escaping, formatting, tables, pagers, form controls,
request parameters, and the render context (web app or static report).

All text that comes from data (documents, reasons, paths, column values) goes through `h()`.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import plotly.io as pio

from thresher.dashboards.catalog import InvalidParameter, NotFound

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


def h(value: object) -> str:
    """HTML-escape anything for text and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


@dataclass
class RenderContext:
    """How panels render: for the app (links and forms) or for the static report (anchors)."""

    static: bool = False
    _ids: itertools.count = field(default_factory=itertools.count)

    def figure(self, fig, css_class: str = "fig", *, modebar: bool = True) -> str:
        config = PLOTLY_CONFIG if modebar else {**PLOTLY_CONFIG, "displayModeBar": False}
        div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{next(self._ids)}",
                          config=config, default_height=f"{fig.layout.height or 320}px")
        return f'<div class="{css_class}">{div}</div>'

    def link(self, key: str, **params: object) -> str:
        if self.static:
            return f"#{key}"
        query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
        return f"/{key}" + (f"?{query}" if query else "")


Params = Mapping[str, str]


# -- small HTML helpers ---------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]], *, css_class: str = "") -> str:
    """Cells are HTML already (escape them with h()); headers are escaped here."""
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def kv(items: list[tuple[str, object]]) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{h(k)}</dt><dd>{h(fmt(v))}</dd>" for k, v in items) + "</dl>"


def note(text: str) -> str:
    return f'<p class="note">{h(text)}</p>'


def pager(ctx: RenderContext, key: str, params: Mapping[str, object], page: int, pages: int, total: int,
          noun: str) -> str:
    if ctx.static:
        return f'<p class="pager">{total:,} {h(noun)}</p>'
    links = []
    if page > 1:
        links.append(f'<a href="{h(ctx.link(key, **{**params, "page": page - 1}))}">← previous</a>')
    links.append(f"page {page:,} of {pages:,} ({total:,} {h(noun)})")
    if page < pages:
        links.append(f'<a href="{h(ctx.link(key, **{**params, "page": page + 1}))}">next →</a>')
    return '<p class="pager">' + " · ".join(links) + "</p>"


def select(name: str, options: list[tuple[str, str]], selected: str | None, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{h(v)}"' for k, v in attrs.items())
    opts = "".join(f'<option value="{h(v)}"{" selected" if v == selected else ""}>{h(label)}</option>'
                   for v, label in options)
    return f'<select name="{h(name)}"{extra}>{opts}</select>'


def doc_text(text: str, total_chars: int) -> str:
    more = total_chars - len(text)
    tail = f'<span class="more">… {more:,} more characters</span>' if more > 0 else ""
    return f'<pre class="doc">{h(text)}{tail}</pre>'


# -- request parameters ---------------------------------------------------------------------------


def param_str(params: Params, name: str) -> str | None:
    value = params.get(name)
    return value if value not in (None, "") else None


def param_float(params: Params, name: str) -> float | None:
    value = param_str(params, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InvalidParameter(f"{name} must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidParameter(f"{name} must be a finite number")
    return number


def param_int(params: Params, name: str, default: int, lo: int, hi: int) -> int:
    value = param_str(params, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidParameter(f"{name} must be a whole number, not {value!r}") from None
    if not lo <= number <= hi:
        raise InvalidParameter(f"{name} must be between {lo} and {hi}")
    return number


def param_choice(params: Params, name: str, choices: list[str], default: str | None) -> str | None:
    value = param_str(params, name)
    if value is None:
        return default
    if value not in choices:
        raise NotFound(f"{name} {value!r} is not in this run")
    return value

