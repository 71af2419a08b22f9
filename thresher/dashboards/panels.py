"""The panel registry and the HTML of each panel, shared by the web app and the static report.

A panel is a key, a title, a test over the catalog (`applies`: which views it needs) and a
`render(catalog, context, params) -> html` function. The app serves every registered panel at
`/<key>`; the report renders each one once, statically. A later stage plugs a panel in with
`register_panel(Panel(...))`: the navigation lists it, and it says "not in this run" until a run
has the views it looks for.

All text that comes from data (documents, reasons, paths, column values) goes through `h()`.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import plotly.io as pio

from thresher.dashboards import data as d
from thresher.dashboards import figures as f

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
Renderer = Callable[[d.Catalog, RenderContext, Params], str]


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    description: str
    needs: str  # what the run must have, said when it does not
    applies: Callable[[d.Catalog], bool]
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
    raise d.NotFound(f"no panel {key!r}")


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


def not_in_run(panel: Panel) -> str:
    return f'<div class="absent"><strong>Not in this run.</strong> {h(panel.needs)}</div>'


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
        raise d.InvalidParameter(f"{name} must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise d.InvalidParameter(f"{name} must be a finite number")
    return number


def param_int(params: Params, name: str, default: int, lo: int, hi: int) -> int:
    value = param_str(params, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise d.InvalidParameter(f"{name} must be a whole number, not {value!r}") from None
    if not lo <= number <= hi:
        raise d.InvalidParameter(f"{name} must be between {lo} and {hi}")
    return number


def param_choice(params: Params, name: str, choices: list[str], default: str | None) -> str | None:
    value = param_str(params, name)
    if value is None:
        return default
    if value not in choices:
        raise d.NotFound(f"{name} {value!r} is not in this run")
    return value


# -- overview -------------------------------------------------------------------------------------


def render_overview(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    summary = d.run_summary(cat)
    funnel = d.funnel(cat)
    out = [kv([("run", summary.name), ("directory", summary.root), ("seed", summary.seed),
               ("recipe hash", summary.recipe_hash), ("created", summary.created_at),
               *[(f"{t} rows", n) for t, n in summary.table_rows.items()]])]
    if funnel.reconciled is not None:
        verdict = "reconciles" if funnel.reconciled else "DOES NOT reconcile"
        out.append(f'<p class="{"ok" if funnel.reconciled else "bad"}">rows in {fmt(funnel.rows_in)} = written '
                   f'{fmt(funnel.rows_written)} + quarantined {fmt(funnel.rows_quarantined)}: {verdict}</p>')
    charts = []
    if funnel.steps:
        charts.append(ctx.figure(f.funnel_figure(funnel)))
    if funnel.quarantine_reasons:
        charts.append(ctx.figure(f.quarantine_figure(funnel)))
    if charts:
        out.append('<div class="row">' + "".join(charts) + "</div>")

    stage_rows = []
    for stage in summary.stages:
        counts = ", ".join(f"{k} {fmt(v)}" for k, v in stage.counts.items())
        stage_rows.append([h(stage.name), f'<span class="status-{h(stage.status)}">{h(stage.status)}</span>',
                           h(stage.started_at or "–"), h(stage.finished_at or "–"), h(counts or "–")])
    if stage_rows:
        out.append("<h3>Stages (run.json)</h3>" + table(["stage", "status", "started", "finished", "counts"],
                                                         stage_rows))
    for stage in summary.stages:
        for name, records in stage.tables.items():
            headers = list(dict.fromkeys(k for r in records for k in r))
            out.append(f"<h4>{h(stage.name)}: {h(name)}</h4>" + table(
                headers, [[h(fmt(r.get(k))) for k in headers] for r in records]))
    for sel in d.selections(cat):
        if sel.funnel:
            out.append(f"<h4>selection {h(sel.name)}: its funnel</h4>" + table(
                ["step", "rows", "predicate"],
                [[h(s.get("step")), h(fmt(s.get("rows"))), f'<code>{h(s.get("sql") or "")}</code>']
                 for s in sel.funnel]))
    panel_rows = []
    for panel in PANELS:
        if panel.key == "overview":
            continue
        present = panel.applies(cat)
        name = f'<a href="{h(ctx.link(panel.key))}">{h(panel.title)}</a>' if present else h(panel.title)
        status = "yes" if present else '<span class="muted">not in this run</span>'
        panel_rows.append([name, h(panel.description), status])
    out.append("<h3>Panels</h3>" + table(["panel", "shows", "in this run"], panel_rows))
    out.append("<h3>Catalog views</h3>" + table(["view", "description"],
                                                [[f"<code>{h(n)}</code>", h(desc)] for n, desc in summary.views]))
    return "\n".join(out)


# -- score histograms -----------------------------------------------------------------------------


def _score_selectors(cat: d.Catalog, view: str, column: str | None, extra: str = "") -> str:
    views = d.score_views(cat)
    columns = d.score_columns(cat)
    groups = "".join(
        f'<optgroup label="{h(v)}">' + "".join(
            f'<option value="{h(c)}"{" selected" if v == view and c == column else ""}>{h(c)}</option>'
            for c in columns[v]) + "</optgroup>"
        for v in views)
    return (f'<label>scorer {select("view", [(v, v) for v in views], view, onchange="syncColumns(this)")}</label> '
            f'<label>column <select name="column">{groups}</select></label>{extra}')


def _pick_score_column(cat: d.Catalog, params: Params) -> tuple[str, str | None]:
    views = d.score_views(cat)
    view = param_choice(params, "view", views, views[0])
    columns = d.score_columns(cat)[view]
    column = param_str(params, "column")
    if column is not None and column not in columns:
        raise d.NotFound(f"score view {view!r} has no numeric column {column!r}")
    return view, column


def _small_multiples(ctx: RenderContext, hists: list) -> str:
    """Compact histograms of the columns that hold values; all-null columns (e.g. a judge run on a
    sample of rows that missed this view's rows) are named in a note instead of an empty chart."""
    empty = [x.column for x in hists if not x.counts]
    grid = '<div class="grid">' + "".join(ctx.figure(f.histogram_figure(x, height=250, compact=True), modebar=False)
                                          for x in hists if x.counts) + "</div>"
    return grid + (note("no values in: " + ", ".join(empty)) if empty else "")


def render_scores(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    out = []
    if ctx.static:
        for view in d.score_views(cat):
            hists = d.histograms(cat, view, bins=40)
            out.append(f'<h3 id="scores-{h(view)}">{h(view)}</h3>'
                       f'{note(cat.views.get(view, ""))}' + _small_multiples(ctx, hists))
        return "\n".join(out)
    view, column = _pick_score_column(cat, params)
    bins = param_int(params, "bins", 40, 2, 200)
    columns = d.score_columns(cat)[view]
    column = column or (columns[0] if columns else None)
    out.append(f'<form method="get" action="/scores" class="controls">{_score_selectors(cat, view, column)} '
               f'<label>bins <input type="number" name="bins" min="2" max="200" value="{bins}"></label> '
               '<button type="submit">show</button></form>')
    if column is None:
        return "\n".join(out) + note(f"{view} has no numeric columns")
    focus = d.histogram(cat, view, column, bins=bins)
    out.append(ctx.figure(f.histogram_figure(focus, height=380), css_class="fig focus") + note(f.histogram_note(focus)))
    bands = d.score_bands(cat, view, column, 5)
    if bands:
        out.append("<h3>Score bands</h3>" + table(
            ["band", "from", "to", "documents", ""],
            [[h(b.label), h(fmt(b.lo)), h(fmt(b.hi)), h(fmt(b.rows)),
              f'<a href="{h(ctx.link("samples", view=view, column=column, lo=repr(b.lo), hi=repr(b.hi)))}">'
              "read documents →</a>"] for b in bands]))
    out.append(f"<h3>Every column of {h(view)}</h3>")
    cards = []
    for x in d.histograms(cat, view, bins=30):
        link = ctx.link("scores", view=view, column=x.column)
        small = f.histogram_figure(x, height=220, compact=True, title=False)
        cards.append(f'<div class="card"><a class="focus-link" href="{h(link)}">{h(x.column)}</a>'
                     f'{ctx.figure(small, css_class="fig small", modebar=False)}</div>')
    out.append('<div class="grid">' + "".join(cards) + "</div>")
    return "\n".join(out)


# -- sample viewer --------------------------------------------------------------------------------


def _sample_cards(page: d.SamplePage) -> str:
    cards = []
    for s in page.samples:
        meta = " · ".join(h(x) for x in (s.table, s.source, s.url) if x)
        cards.append(f'<article class="sample"><header><code>{h(s.doc_id)}</code> '
                     f'<span class="value">{h(page.column)} = {h(fmt(s.value))}</span> '
                     f'<span class="muted">{meta} · {s.text_chars:,} characters</span></header>'
                     f"{doc_text(s.text, s.text_chars)}</article>")
    return "".join(cards) or note("no documents in this range")


def render_samples(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    out = []
    if ctx.static:
        out.append(note("Per score view, its first column's lowest, middle and highest fifth; two documents "
                        "each (seeded random), the first 600 characters."))
        for view in d.score_views(cat):
            columns = d.score_columns(cat)[view]
            if not columns:
                continue
            column = columns[0]
            bands = d.score_bands(cat, view, column, 5)
            picked = [bands[0], bands[len(bands) // 2], bands[-1]] if len(bands) >= 3 else bands
            for band in dict.fromkeys(picked):
                page = d.samples(cat, view, column, band.lo, band.hi, per_page=2, max_chars=600)
                out.append(f"<h3>{h(view)}.{h(column)} {h(band.label)}: [{h(fmt(band.lo))}, {h(fmt(band.hi))}] "
                           f"({band.rows:,} documents)</h3>{_sample_cards(page)}")
        return "\n".join(out)
    view, column = _pick_score_column(cat, params)
    column = column or (d.score_columns(cat)[view] or [None])[0]
    if column is None:
        return note(f"{view} has no numeric columns")
    lo, hi = param_float(params, "lo"), param_float(params, "hi")
    order = param_choice(params, "order", list(d.SAMPLE_ORDERS), "random")
    page_no = param_int(params, "page", 1, 1, 1_000_000)
    per_page = param_int(params, "per_page", 10, 1, 100)
    seed = param_int(params, "seed", 0, 0, 2**31 - 1)
    extra = (f' <label>from <input name="lo" type="number" step="any" value="{h("" if lo is None else lo)}"></label>'
             f' <label>to <input name="hi" type="number" step="any" value="{h("" if hi is None else hi)}"></label>'
             f' <label>order {select("order", [(o, o) for o in d.SAMPLE_ORDERS], order)}</label>'
             f' <label>per page <input name="per_page" type="number" min="1" max="100" value="{per_page}"></label>'
             f' <label>seed <input name="seed" type="number" min="0" value="{seed}"></label>')
    out.append(f'<form method="get" action="/samples" class="controls">{_score_selectors(cat, view, column, extra)}'
               ' <button type="submit">show</button></form>')
    bands = d.score_bands(cat, view, column, 5)
    if bands:
        out.append('<p class="bands">bands: ' + " ".join(
            f'<a href="{h(ctx.link("samples", view=view, column=column, lo=repr(b.lo), hi=repr(b.hi), order=order))}">'
            f"{h(b.label)} [{h(fmt(b.lo))}, {h(fmt(b.hi))}] ({b.rows:,})</a>" for b in bands) + "</p>")
    band_hist = d.histogram(cat, view, column)
    out.append(ctx.figure(f.histogram_figure(band_hist, height=240, highlight=(lo, hi)), css_class="fig band")
               + note(f.histogram_note(band_hist) + "; the shaded range is the one shown below"))
    page = d.samples(cat, view, column, lo, hi, page=page_no, per_page=per_page, order=order, seed=seed)
    keep = {"view": view, "column": column, "lo": lo, "hi": hi, "order": order, "per_page": per_page, "seed": seed}
    out.append(pager(ctx, "samples", keep, page.page, page.pages, page.total, "documents"))
    out.append(_sample_cards(page))
    if page.samples:
        out.append(pager(ctx, "samples", keep, page.page, page.pages, page.total, "documents"))
    return "\n".join(out)


# -- quarantine -----------------------------------------------------------------------------------


def render_quarantine(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    reason = param_str(params, "reason")
    page_no = param_int(params, "page", 1, 1, 1_000_000)
    per_page = 200 if ctx.static else param_int(params, "per_page", 25, 1, 100)
    page = d.quarantine_page(cat, reason, page=page_no, per_page=min(per_page, 100))
    out = []
    reason_rows = [[f'<a href="{h(ctx.link("quarantine", reason=r))}">{h(r)}</a>', h(fmt(n))]
                   for r, n in page.reasons.items()]
    out.append(table(["reason", "input rows"], reason_rows))
    if reason:
        out.append(f'<p>showing reason <code>{h(reason)}</code> · <a href="{h(ctx.link("quarantine"))}">all</a></p>')
    rows = [[h(r.source), h(fmt(r.source_row)), h(fmt(r.byte_offset)), f"<code>{h(r.reason)}</code>", h(r.detail),
             h(fmt(r.n_rows)),
             f'<pre class="raw">{h(r.raw_preview)}</pre>' + (
                 f'<span class="more">{r.raw_bytes:,} bytes</span>' if r.raw_bytes else "")]
            for r in page.rows]
    out.append(pager(ctx, "quarantine", {"reason": reason}, page.page, page.pages, page.total, "quarantine records"))
    out.append(table(["source", "row", "byte offset", "reason", "detail", "rows", "raw (first bytes)"], rows,
                     css_class="quarantine"))
    return "\n".join(out)


# -- duplicate clusters ---------------------------------------------------------------------------


def _dedup_applies(cat: d.Catalog) -> bool:
    return bool(d.dedup_sources(cat)) or any(v.startswith("dedup_") for v in cat.unique_views())


def _members_html(cat: d.Catalog, source: d.DedupSource, cluster_id: str, limit: int, max_chars: int) -> str:
    members = d.cluster_members(cat, source, cluster_id, limit=limit, max_chars=max_chars)
    cards = []
    for m in members:
        badge = ('<span class="badge keep">survivor</span>' if m.is_survivor else
                 '<span class="badge dup">duplicate</span>' if m.is_duplicate else '<span class="badge">kept</span>')
        if m.prior_run is not None:
            meta = f"from prior run {h(m.prior_run)}"
            body = note("(a document of a prior run: its text lives in that run)")
        else:
            meta = " · ".join(h(x) for x in (m.table, m.source, m.url) if x)
            body = doc_text(m.text, m.text_chars)
        cards.append(f'<article class="sample"><header>{badge} <code>{h(m.doc_id)}</code> '
                     f'<span class="muted">{meta}</span></header>{body}</article>')
    return "".join(cards)


def render_dedup(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    sources = d.dedup_sources(cat)
    out = []
    if sources:
        names = [s.view for s in sources]
        chosen = d.dedup_source(cat, param_choice(params, "source", names, None))
        if not ctx.static and len(sources) > 1:
            out.append(f'<form method="get" action="/dedup" class="controls"><label>clusters of '
                       f'{select("source", [(n, n) for n in names], chosen.view)}</label> '
                       '<button type="submit">show</button></form>')
        for source in ([chosen] if not ctx.static else sources):
            summary = d.dedup_summary(cat, source)
            facts = [("documents", summary.documents), ("clusters (2+ documents)", summary.clusters),
                     ("documents in clusters", summary.clustered_documents),
                     ("flagged duplicates", summary.duplicates), ("largest cluster", summary.largest),
                     ("cluster key", source.key_column)]
            if summary.prior_run_documents:
                facts.append(("prior runs' documents", summary.prior_run_documents))
            out.append(f"<h3>{h(source.view)}</h3>" + kv(facts))
            if summary.derived:
                out.append(note("derived here (absent from the table): " + ", ".join(summary.derived)
                                + "; the survivor is then the smallest doc_id"))
            if summary.size_counts:
                out.append(ctx.figure(f.cluster_size_figure(summary)))
            page_no = 1 if ctx.static else param_int(params, "page", 1, 1, 1_000_000)
            clusters = d.dedup_clusters(cat, source, page=page_no, per_page=5 if ctx.static else 20)
            rows = [[f'<a href="{h(ctx.link("dedup", source=source.view, cluster=c.cluster_id))}">'
                     f"<code>{h(c.cluster_id)}</code></a>" if not ctx.static else f"<code>{h(c.cluster_id)}</code>",
                     h(fmt(c.size)), h(fmt(c.duplicates)), f"<code>{h(c.survivor_id)}</code>",
                     f'<span class="preview">{h(c.preview)}</span>'] for c in clusters.clusters]
            if rows:
                out.append("<h4>Largest clusters</h4>" + pager(ctx, "dedup", {"source": source.view}, clusters.page,
                                                                clusters.pages, clusters.total, "clusters"))
                out.append(table(["cluster", "size", "duplicates", "survivor", "survivor text"], rows))
            cluster_id = None if ctx.static else param_str(params, "cluster")
            if ctx.static and clusters.clusters and source is chosen:
                cluster_id = clusters.clusters[0].cluster_id
            if cluster_id is not None:
                out.append(f"<h4>Cluster <code>{h(cluster_id)}</code></h4>"
                           + _members_html(cat, source, cluster_id, 3 if ctx.static else 50,
                                           600 if ctx.static else 3000))
    others = [v for v in cat.unique_views() if v.startswith("dedup_") and v not in {s.view for s in sources}]
    if others:
        out.append("<h3>Other dedup tables</h3>" + _table_list(cat, others))
    return "\n".join(out)


def _table_list(cat: d.Catalog, views: list[str]) -> str:
    rows = []
    for view in views:
        columns = cat.columns(view)
        rows.append([f"<code>{h(view)}</code>", h(fmt(cat.scalar(f"SELECT count(*) FROM {d.quote_ident(view)}"))),
                     h(", ".join(c.name for c in columns[:12]) + (" …" if len(columns) > 12 else ""))])
    return table(["view", "rows", "columns"], rows)


def _preview(cat: d.Catalog, view: str, limit: int = 8) -> str:
    p = d.table_preview(cat, view, limit=limit)
    return (f"<h4><code>{h(view)}</code> ({p.rows:,} rows)</h4>"
            + table([f"{c.name} ({c.type})" for c in p.columns], [[h(v) for v in r] for r in p.head],
                    css_class="preview"))


# -- selections and DSIR --------------------------------------------------------------------------


def _selections_applies(cat: d.Catalog) -> bool:
    views = cat.unique_views()
    return any(v.startswith(("selections_", "dsir_")) for v in views) or bool(d.dsir_columns(cat))


def _selection_details(s: d.SelectionInfo) -> str:
    if s.is_dsir:
        meta = s.metadata
        targets = "; ".join(f'{t.get("target")}: {fmt(t.get("selected"))} of {fmt(t.get("candidates"))} candidates'
                            for t in meta.get("targets") or [] if isinstance(t, dict))
        return h(f'DSIR {meta.get("method", "")} k={fmt(meta.get("k"))} seed={meta.get("seed")} '
                 f'fit {meta.get("fit_hash")}; {targets}')
    if s.funnel:
        return h(" → ".join(f'{x.get("step")} {fmt(x.get("rows"))}' for x in s.funnel))
    return "–"


def _kl_table(report: dict) -> str:
    rows = []
    for t in report.get("targets") or []:
        reduction = t.get("kl_reduction_vs_random")
        rows.append([h(t.get("target")), h(fmt(t.get("selected_docs"))), h(fmt(t.get("kl_target_raw"))),
                     h(fmt(t.get("kl_target_random"))), h(fmt(t.get("kl_target_selected"))),
                     h("–" if reduction is None else f"{reduction:.1%}"), h(fmt(t.get("kl_floor"))),
                     h(fmt(t.get("features_compared")))])
    return table(["target", "selected", "KL(target‖raw)", "KL(target‖random)", "KL(target‖selected)",
                  "reduction vs random", "floor (perfect sample)", "n-grams compared"], rows)


def render_selections(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    out = []
    sels = d.selections(cat)
    if sels:
        rows = [[h(s.name), f"<code>{h(s.view)}</code>", h(fmt(s.rows)), h(s.metadata.get("table") or "–"),
                 _selection_details(s)] for s in sels]
        out.append("<h3>Selections</h3>" + table(["selection", "view", "documents", "table", "how"], rows))
    reported = False
    for s in sels:
        report = d.dsir_selection_report(cat, s)
        if report is None:
            continue
        out.append(f"<h3>DSIR selection {h(s.name)}: target vs selected</h3>")
        if "error" in report:
            out.append(f'<div class="absent">The DSIR report could not be computed: {h(report["error"])}</div>')
            continue
        reported = True
        out.append(note("From the DSIR stage's report: KL divergences in nats (lower = closer to the target); "
                        "selected and random baseline compared at the same number of n-gram features.")
                   + _kl_table(report))
        for target in report.get("targets") or []:
            out.append(ctx.figure(f.report_figure(s.name, target)))
            if target.get("featurized_docs", 0) < target.get("selected_docs", 0):
                out.append(note(f"p_selected from a seeded subsample of {target['featurized_docs']:,} documents"))
    comparisons = d.dsir_comparisons(cat)
    if comparisons:
        out.append("<h3>DSIR log weights: pool vs selected</h3>" + note(
            "Each target's dsir_<target>_log_weight over every scored document (pool), the selected documents "
            "and the random baseline of the same size, as shares of each, on the same bins.")
            + '<div class="grid wide">' + "".join(ctx.figure(f.comparison_figure(c)) for c in comparisons) + "</div>")
    fits = d.dsir_fit_distributions(cat)
    if fits:
        out.append("<h3>DSIR fit</h3>" + table(
            ["fit", "target", "buckets", "KL(target‖raw)"],
            [[f"<code>{h(x.fit_hash)}</code>", h(x.target), h(fmt(x.buckets_total)), h(fmt(x.kl_target_raw))]
             for x in fits]))
        if not reported:
            out.extend(ctx.figure(f.fit_figure(x)) for x in fits)
    shown = {x.view for x in fits}
    other = [v for v in cat.unique_views() if v.startswith("dsir_") and v not in shown]
    if other:
        out.append("<h3>Other DSIR tables</h3>" + _table_list(cat, other))
    if sels and not ctx.static and d.score_views(cat):
        view, column = _pick_score_column(cat, params)
        column = column or (d.score_columns(cat)[view] or [None])[0]
        chosen = param_choice(params, "selection", [s.view for s in sels], sels[0].view)
        extra = f' <label>selection {select("selection", [(s.view, s.name) for s in sels], chosen)}</label>'
        out.append("<h3>Compare any score: pool vs a selection</h3>"
                   f'<form method="get" action="/selections" class="controls">'
                   f'{_score_selectors(cat, view, column, extra)} <button type="submit">compare</button></form>')
        if column is not None:
            out.append(ctx.figure(f.comparison_figure(d.compare_distribution(cat, view, column, chosen))))
    return "\n".join(out) or note("no selections or DSIR tables")


# -- judges ---------------------------------------------------------------------------------------


def render_judges(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    views = d.judge_views(cat)
    chosen = views if ctx.static else [param_choice(params, "view", views, views[0])]
    out = []
    if not ctx.static and len(views) > 1:
        out.append(f'<form method="get" action="/judges" class="controls"><label>judge '
                   f'{select("view", [(v, v) for v in views], chosen[0])}</label> '
                   '<button type="submit">show</button></form>')
    for view in chosen:
        j = d.judge_view(cat, view)
        out.append(f"<h3>{h(view)}</h3>" + kv([("rows", j.rows), ("score columns", ", ".join(j.score_columns))]))
        if j.unparsed:
            out.append(table(["score column", "raw output but no score (unparsed)"],
                             [[h(c), h(fmt(n))] for c, n in j.unparsed.items()]))
        out.append(_small_multiples(ctx, j.histograms))
        if j.calibration is not None:
            out.append("<h4>Calibration</h4>" + note(
                f"mean {j.calibration.y} per bin of {j.calibration.x} over the joint distribution")
                + ctx.figure(f.calibration_figure(j.calibration)))
    return "\n".join(out)


# -- Evol-Instruct --------------------------------------------------------------------------------


def render_evol(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    out = []
    for view in d.evol_views(cat):
        e = d.evol_survival(cat, view)
        out.append(f"<h3>{h(view)}</h3>" + kv([("rows", e.rows), ("round column", e.round_column),
                                                ("survival from", e.kept_expr_column)]))
        if e.per_round and e.kept_expr_column:
            out.append(ctx.figure(f.evol_round_figure(e)))
        if e.reasons:
            out.append(ctx.figure(f.evol_reason_figure(e)))
        if e.per_kind:
            out.append(table(["evolution", "candidates", "survived", "survival"],
                             [[h(k), h(fmt(n)), h(fmt(s)), h(f"{s / n:.0%}" if n else "–")] for k, n, s in e.per_kind]))
        if not (e.per_round or e.reasons or e.per_kind):
            out.append(note("no round, survival or reason columns recognised; the table:") + _preview(cat, view))
    return "\n".join(out)


# -- the registry ---------------------------------------------------------------------------------

for _panel in (
    Panel("overview", "Overview", "run manifest, stage funnel, quarantine by reason, stages, views",
          "", lambda cat: True, render_overview),
    Panel("scores", "Score histograms", "distribution of every numeric column of every score_* view",
          "Needs a score_* view: run `thresher score`.", lambda cat: bool(d.score_views(cat)), render_scores),
    Panel("samples", "Sample viewer", "documents whose score lies in a chosen band, with their text",
          "Needs a score_* view: run `thresher score`.", lambda cat: bool(d.score_views(cat)), render_samples),
    Panel("quarantine", "Quarantine", "rows that could not be read, by reason, with their raw bytes",
          "Needs the quarantine view (nothing was quarantined).", lambda cat: cat.has("quarantine"),
          render_quarantine),
    Panel("dedup", "Duplicate clusters", "cluster sizes, largest clusters, members with survivor marked",
          "Needs a view with doc_id and cluster_id (score_minhash_dedup, dedup_clusters) or dedup_* tables.",
          _dedup_applies, render_dedup),
    Panel("selections", "Selections & DSIR", "selection counts and funnels; dsir_* columns pool vs selected; "
          "target distributions", "Needs selections_* or dsir_* views, or dsir_* score columns.",
          _selections_applies, render_selections),
    Panel("judges", "Judge calibration", "judge score distributions, unparsed outputs, score vs reference",
          "Needs a judge view (a view named *judge* or *ifd*, or score columns judge_*).",
          lambda cat: bool(d.judge_views(cat)), render_judges),
    Panel("evol", "Evol survival", "Evol-Instruct candidates surviving per round, elimination reasons",
          "Needs an evol_* or augment_* view.", lambda cat: bool(d.evol_views(cat)), render_evol),
):
    register_panel(_panel)


# -- page layout ----------------------------------------------------------------------------------

CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --accent:#2f6f9f; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
header.top { background:#16324f; color:#fff; padding:10px 20px; display:flex; gap:18px; align-items:baseline;
             flex-wrap:wrap; }
header.top h1 { font-size:17px; margin:0; }
header.top .path { color:#c9d6e3; font-family:ui-monospace,monospace; font-size:12px; }
nav { display:flex; flex-wrap:wrap; gap:4px; padding:6px 16px; background:#fff; border-bottom:1px solid var(--line);
      position:sticky; top:0; z-index:10; }
nav a, nav span { padding:5px 10px; border-radius:4px; text-decoration:none; color:var(--accent); }
nav a.active { background:var(--accent); color:#fff; }
nav span.absent { color:#aab4be; cursor:default; }
main { padding:14px 20px 40px; max-width:1500px; }
section.panel { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 18px; margin:0 0 18px; }
h2 { font-size:18px; margin:4px 0 10px; } h3 { font-size:15px; margin:18px 0 8px; }
h4 { font-size:14px; margin:14px 0 6px; }
table { border-collapse:collapse; margin:6px 0 10px; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px 4px 0; text-align:left; vertical-align:top;
         overflow-wrap:anywhere; }
td .preview { display:block; max-width:640px; }
th { color:var(--muted); font-weight:600; }
table.quarantine td:nth-child(5) { max-width:360px; }
table.preview td { max-width:260px; overflow-wrap:anywhere; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12px; }
pre { white-space:pre-wrap; overflow-wrap:anywhere; margin:4px 0; }
pre.doc { max-height:320px; overflow:auto; background:#fbfbfc; border:1px solid var(--line); padding:8px;
          font-size:12px; }
pre.raw { max-width:420px; max-height:90px; overflow:auto; font-size:11px; background:#fbfbfc; }
.more, .muted, .note { color:var(--muted); font-size:12px; }
.kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; margin:0 0 8px; }
.kv dt { color:var(--muted); } .kv dd { margin:0; font-family:ui-monospace,monospace; font-size:12.5px; }
/* auto-fill, not auto-fit: a chart drawn while it is its row's only child must get one track. */
.row { display:grid; grid-template-columns:repeat(auto-fill, minmax(480px, 1fr)); gap:14px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(340px, 1fr)); gap:10px; }
.grid.wide { grid-template-columns:repeat(auto-fill, minmax(520px, 1fr)); }
.card { border:1px solid var(--line); border-radius:4px; padding:2px 4px; }
.card .focus-link { font-size:12px; margin-left:6px; }
.fig { min-width:0; }
.controls { display:flex; flex-wrap:wrap; gap:10px; align-items:center; margin:4px 0 12px; }
.controls input[type=number] { width:110px; }
article.sample { border-left:3px solid var(--accent); padding:2px 0 2px 10px; margin:10px 0; }
article.sample header { font-size:12.5px; }
.value { font-weight:600; margin:0 8px; }
.badge { font-size:11px; padding:1px 6px; border-radius:8px; background:#e4e7eb; }
.badge.keep { background:#d5ecd9; } .badge.dup { background:#f7dfc9; }
.absent { padding:14px; background:#f3f4f6; border-radius:4px; color:var(--muted); }
.error { padding:14px; background:#fde8e8; border-radius:4px; }
.ok { color:#2d7a46; } .bad { color:#b42318; font-weight:600; }
.status-finished { color:#2d7a46; } .status-running { color:#b7791f; } .status-failed { color:#b42318; }
.preview { color:var(--muted); }
p.pager { margin:8px 0; }
"""

# Keeps the column <select> to the columns of the chosen score view.
SYNC_JS = """
function syncColumns(viewSelect) {
  var form = viewSelect.form, column = form.querySelector('select[name=column]');
  if (!column) return;
  var first = null;
  column.querySelectorAll('optgroup').forEach(function (g) {
    var on = g.label === viewSelect.value;
    g.hidden = !on; g.disabled = !on;
    if (on && !first) first = g.querySelector('option');
  });
  if (first && column.selectedOptions[0] && column.selectedOptions[0].parentNode.label !== viewSelect.value) {
    first.selected = true;
  }
}
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('select[name=view]').forEach(syncColumns);
});
// Charts are drawn while the page is still parsed; once laid out, fit each to its box.
window.addEventListener('load', function () {
  if (!window.Plotly) return;
  document.querySelectorAll('.js-plotly-plot').forEach(function (gd) { Plotly.Plots.resize(gd); });
});
"""


def nav(cat: d.Catalog, ctx: RenderContext, active: str | None) -> str:
    items = []
    for panel in PANELS:
        if panel.applies(cat):
            css = ' class="active"' if panel.key == active else ""
            items.append(f'<a href="{h(ctx.link(panel.key))}"{css}>{h(panel.title)}</a>')
        else:
            items.append(f'<span class="absent" title="not in this run">{h(panel.title)}</span>')
    return "<nav>" + "".join(items) + "</nav>"


def page(*, title: str, run_name: str, run_root: str, nav_html: str, body: str, head: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{h(title)}</title><style>{CSS}</style>{head}<script>{SYNC_JS}</script></head><body>"
        f'<header class="top"><h1>thresher · {h(run_name)}</h1><span class="path">{h(run_root)}</span></header>'
        f"{nav_html}<main>{body}</main></body></html>"
    )


def section(panel: Panel, body: str) -> str:
    return (f'<section class="panel" id="{h(panel.key)}"><h2>{h(panel.title)}</h2>'
            f'<p class="note">{h(panel.description)}</p>{body}</section>')
