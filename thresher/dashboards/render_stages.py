"""Panels of the dedup, selection and DSIR stages, from the tables the stages declare."""

from __future__ import annotations

from thresher.dashboards import data as d
from thresher.dashboards import figures as f
from thresher.dashboards.render_run import pick_score_column, score_selectors
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
    param_int,
    param_str,
    select,
    table,
)

# -- duplicate clusters ---------------------------------------------------------------------------


def dedup_applies(cat: d.Catalog) -> bool:
    return bool(d.dedup_sources(cat)) or bool(d.other_dedup_tables(cat))


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
                     ("cluster key", source.key_column), ("method", source.method)]
            if summary.prior_run_documents:
                facts.append(("prior runs' documents", summary.prior_run_documents))
            out.append(f"<h3>{h(source.view)}</h3>" + kv(facts))
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
    others = d.other_dedup_tables(cat)
    if others:
        out.append("<h3>Other dedup tables</h3>" + table_list(cat, others))
    return "\n".join(out)


def table_list(cat: d.Catalog, views: list[str]) -> str:
    rows = []
    for view in views:
        columns = cat.columns(view)
        rows.append([f"<code>{h(view)}</code>", h(fmt(cat.scalar(f"SELECT count(*) FROM {d.quote_ident(view)}"))),
                     h(", ".join(c.name for c in columns[:12]) + (" …" if len(columns) > 12 else ""))])
    return table(["view", "rows", "columns"], rows)


# -- selections and DSIR --------------------------------------------------------------------------


def selections_applies(cat: d.Catalog) -> bool:
    return bool(d.selections(cat)) or bool(d.other_dsir_tables(cat)) or bool(d.dsir_columns(cat))


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
            "Each target's log-weight column of the DSIR sidecar over every scored document (pool), the selected "
            "documents and the random baseline of the same size, as shares of each, on the same bins.")
            + '<div class="grid wide">' + "".join(ctx.figure(f.comparison_figure(c)) for c in comparisons) + "</div>")
    fits = d.dsir_fit_distributions(cat)
    if fits:
        out.append("<h3>DSIR fit</h3>" + table(
            ["fit", "target", "buckets", "KL(target‖raw)"],
            [[f"<code>{h(x.fit_hash)}</code>", h(x.target), h(fmt(x.buckets_total)), h(fmt(x.kl_target_raw))]
             for x in fits]))
        if not reported:
            out.extend(ctx.figure(f.fit_figure(x)) for x in fits)
    other = d.other_dsir_tables(cat)
    if other:
        out.append("<h3>Other DSIR tables</h3>" + table_list(cat, other))
    if sels and not ctx.static and d.score_views(cat):
        view, column = pick_score_column(cat, params)
        column = column or (d.score_columns(cat)[view] or [None])[0]
        chosen = param_choice(params, "selection", [s.view for s in sels], sels[0].view)
        extra = f' <label>selection {select("selection", [(s.view, s.name) for s in sels], chosen)}</label>'
        out.append("<h3>Compare any score: pool vs a selection</h3>"
                   f'<form method="get" action="/selections" class="controls">'
                   f'{score_selectors(cat, view, column, extra)} <button type="submit">compare</button></form>')
        if column is not None:
            out.append(ctx.figure(f.comparison_figure(d.compare_distribution(cat, view, column, chosen))))
    return "\n".join(out) or note("no selections or DSIR tables")


