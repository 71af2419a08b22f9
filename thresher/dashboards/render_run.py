"""Panels over every run: overview, score histograms, sample viewer, quarantine."""

from __future__ import annotations

from thresher.dashboards import data as d
from thresher.dashboards import figures as f
from thresher.dashboards.panel_registry import PANELS
from thresher.dashboards.widgets import (
    Params,
    RenderContext,
    doc_text,
    fmt,
    h,
    kv,
    note,
    pager,
    param_choice,
    param_float,
    param_int,
    param_str,
    select,
    table,
)


def _reconciliation(funnel: d.Funnel) -> str:
    verdict = "reconciles" if funnel.reconciled else "DOES NOT reconcile"
    scope = f"{funnel.table}: " if funnel.table else "every table: "
    return (f'<p class="{"ok" if funnel.reconciled else "bad"}">{h(scope)}rows in {fmt(funnel.rows_in)} = written '
            f'{fmt(funnel.rows_written)} + quarantined {fmt(funnel.rows_quarantined)}: {verdict}</p>')


def _table_funnel(ctx: RenderContext, funnel: d.Funnel) -> str:
    """One table's funnel: chart, the same numbers as a table (shares within this table only), and
    its quarantine reasons."""
    out = [f'<h3 id="funnel-{h(funnel.table)}">{h(funnel.table)}</h3>']
    if funnel.reconciled is not None:
        out.append(_reconciliation(funnel))
    charts = []
    if funnel.steps:
        charts.append(ctx.figure(f.funnel_figure(funnel)))
    if funnel.quarantine_reasons:
        charts.append(ctx.figure(f.quarantine_figure(funnel)))
    if charts:
        out.append('<div class="row">' + "".join(charts) + "</div>")
    if funnel.steps:
        rows = [[h(s.label), h(fmt(s.rows)), h("–" if s.share is None else f"{s.share:.1%}"), h(s.detail)]
                for s in funnel.steps]
        out.append(table(["step", "rows", f"% of {funnel.table} rows in", "detail"], rows,
                         css_class=f"funnel funnel-{funnel.table}"))
    return "\n".join(out)


# -- overview -------------------------------------------------------------------------------------


def render_overview(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    summary = d.run_summary(cat)
    funnel = d.funnel(cat)
    out = [kv([("run", summary.name), ("directory", summary.root), ("seed", summary.seed),
               ("recipe hash", summary.recipe_hash), ("created", summary.created_at),
               *[(f"{t} rows", n) for t, n in summary.table_rows.items()]])]
    if funnel.reconciled is not None:
        out.append(_reconciliation(funnel))
    out.extend(_table_funnel(ctx, table_funnel) for table_funnel in d.funnels(cat).values())

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


def score_selectors(cat: d.Catalog, view: str, column: str | None, extra: str = "") -> str:
    views = d.score_views(cat)
    columns = d.score_columns(cat)
    groups = "".join(
        f'<optgroup label="{h(v)}">' + "".join(
            f'<option value="{h(c)}"{" selected" if v == view and c == column else ""}>{h(c)}</option>'
            for c in columns[v]) + "</optgroup>"
        for v in views)
    return (f'<label>scorer {select("view", [(v, v) for v in views], view, onchange="syncColumns(this)")}</label> '
            f'<label>column <select name="column">{groups}</select></label>{extra}')


def pick_score_column(cat: d.Catalog, params: Params) -> tuple[str, str | None]:
    views = d.score_views(cat)
    view = param_choice(params, "view", views, views[0])
    columns = d.score_columns(cat)[view]
    column = param_str(params, "column")
    if column is not None and column not in columns:
        raise d.NotFound(f"score view {view!r} has no numeric column {column!r}")
    return view, column


def small_multiples(ctx: RenderContext, hists: list) -> str:
    """Compact histograms of the columns that hold values; all-null columns (e.g. a judge run on a
    sample of rows that missed this view's rows) are named in a note instead of an empty chart."""
    empty = [x.column for x in hists if not x.counts]
    grid = '<div class="grid">' + "".join(ctx.figure(f.histogram_figure(x, height=250, compact=True), modebar=False)
                                          for x in hists if x.counts) + "</div>"
    return grid + (note("no values in: " + ", ".join(empty)) if empty else "")


def render_scores(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    out = []
    if ctx.static:
        # One section per view and table: documents and instructions are never binned together.
        for view in d.score_views(cat):
            for table_name in d.view_tables(cat, view):
                hists = d.histograms(cat, view, bins=40, table=table_name)
                out.append(f'<h3 id="scores-{h(view)}-{h(table_name)}">{h(view)} · {h(table_name)}</h3>'
                           f'{note(cat.views.get(view, ""))}' + small_multiples(ctx, hists))
        return "\n".join(out)
    view, column = pick_score_column(cat, params)
    tables = d.view_tables(cat, view)
    # A table the chosen view does not hold (the form keeps the last one when the view changes)
    # falls back to the view's first table rather than an error page.
    asked = param_str(params, "table")
    table_name = asked if asked in tables else (tables[0] if tables else None)
    bins = param_int(params, "bins", 40, 2, 200)
    columns = d.score_columns(cat)[view]
    column = column or (columns[0] if columns else None)
    switch = f' <label>table {select("table", [(t, t) for t in tables], table_name)}</label>'
    out.append(f'<form method="get" action="/scores" class="controls">{score_selectors(cat, view, column, switch)} '
               f'<label>bins <input type="number" name="bins" min="2" max="200" value="{bins}"></label> '
               '<button type="submit">show</button></form>')
    if column is None:
        return "\n".join(out) + note(f"{view} has no numeric columns")
    if table_name is None:
        return "\n".join(out) + note(f"{view} holds no rows of any table")
    focus = d.histogram(cat, view, column, bins=bins, table=table_name)
    out.append(ctx.figure(f.histogram_figure(focus, height=380), css_class="fig focus") + note(f.histogram_note(focus)))
    bands = d.score_bands(cat, view, column, 5, table=table_name)
    if bands:
        out.append(f"<h3>Score bands of {h(table_name)}</h3>" + table(
            ["band", "from", "to", "rows", ""],
            [[h(b.label), h(fmt(b.lo)), h(fmt(b.hi)), h(fmt(b.rows)),
              f'<a href="{h(ctx.link("samples", view=view, column=column, lo=repr(b.lo), hi=repr(b.hi)))}">'
              "read documents →</a>"] for b in bands]))
    out.append(f"<h3>Every column of {h(view)} ({h(table_name)})</h3>")
    cards = []
    for x in d.histograms(cat, view, bins=30, table=table_name):
        link = ctx.link("scores", view=view, column=x.column, table=table_name)
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
    view, column = pick_score_column(cat, params)
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
    out.append(f'<form method="get" action="/samples" class="controls">{score_selectors(cat, view, column, extra)}'
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

