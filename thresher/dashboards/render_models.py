"""Panels of the model stages: judges (with their calibrations) and Evol-Instruct survival."""

from __future__ import annotations

from thresher.dashboards import data as d
from thresher.dashboards import figures as f
from thresher.dashboards.render_run import small_multiples
from thresher.dashboards.widgets import Params, RenderContext, doc_text, fmt, h, kv, note, param_choice, select, table

# -- judges ---------------------------------------------------------------------------------------


def _calibration_html(ctx: RenderContext, c: d.JudgeCalibration, sidecar_key: str) -> str:
    m = c.metrics
    out = [f"<h4>Calibration <code>{h(c.name)}</code></h4>",
           note(f"against {c.reference}; judge version {c.judge_version}"
                + ("" if sidecar_key.endswith("@" + c.judge_version) else f" (the sidecar is {sidecar_key})")),
           kv([("rows", m.get("n")), ("scored", m.get("n_scored")), ("parse errors", m.get("n_parse_errors")),
               ("Spearman (score, label)", m.get("spearman")), ("ROC AUC", m.get("auc")),
               ("positive: label ≥", m.get("positive_threshold")),
               ("mean score, positive", m.get("mean_score_positive")),
               ("mean score, negative", m.get("mean_score_negative"))])]
    if c.plot is not None:
        out.append(ctx.figure(f.calibration_figure(c.plot)))
    if c.confusion:
        labels = sorted({a for a, _, _ in c.confusion})
        predicted = sorted({p for _, p, _ in c.confusion})
        cells = {(a, p): n for a, p, n in c.confusion}
        out.append(table(["label \\ rounded score", *map(str, predicted)],
                         [[h(a), *(h(fmt(cells.get((a, p), 0))) for p in predicted)] for a in labels]))
    return "".join(out)


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
        out.append(f"<h3>{h(view)}</h3>" + (note(j.columns.description) if j.columns.description else "") + kv([
            ("sidecar", j.key), ("rows", j.rows), ("judged", j.judged), ("not sampled", j.not_sampled),
            ("scored", j.scored), ("judged, input truncated", j.truncated)]))
        if j.parse_errors:
            out.append(table(["no score because", "rows"], [[f"<code>{h(r)}</code>", h(fmt(n))]
                                                             for r, n in j.parse_errors.items()]))
        if j.injections:
            out.append(table(["injection pattern in the judged text", "rows"],
                             [[f"<code>{h(k)}</code>", h(fmt(n))] for k, n in j.injections.items()]))
        out.append(small_multiples(ctx, j.histograms))
        if not ctx.static and j.histograms:
            link = ctx.link("samples", view=view, column=j.columns.score)
            out.append(f'<p><a href="{h(link)}">read the judged rows by score →</a></p>')
        if j.unparsed:
            out.append("<h4>Judged rows without a score (raw output kept)</h4>" + table(
                ["doc_id", "why", "raw output (first characters)"],
                [[f"<code>{h(u.doc_id)}</code>", h(u.parse_error), f'<pre class="raw">{h(u.raw)}</pre>']
                 for u in j.unparsed]))
        for calibration in j.calibrations:
            out.append(_calibration_html(ctx, calibration, j.key))
        if not j.calibrations:
            out.append(note(f"No calibration of {j.columns.name}: `thresher judge calibrate RUN --judge "
                            f"{j.columns.name} --degraded N` (or --labels FILE) compares its scores with "
                            "reference labels."))
    return "\n".join(out)


# -- Evol-Instruct --------------------------------------------------------------------------------


def _attempt_card(a: d.EvolAttempt) -> str:
    verdict = ('<span class="badge keep">survived</span>' if a.survived else
               f'<span class="badge dup">{h(a.reason)}</span>')
    detail = f' <span class="muted">{h(a.detail)}</span>' if a.detail else ""
    response = doc_text(a.response, len(a.response)) if a.response is not None else note("(no response generated)")
    return (f'<article class="sample"><header>{verdict} round {a.round} · <code>{h(a.operation)}</code>{detail}'
            f"</header><p class=\"muted\">parent</p>{doc_text(a.parent_instruction, len(a.parent_instruction))}"
            f'<p class="muted">evolved</p>{doc_text(a.instruction, len(a.instruction))}'
            f'<p class="muted">response</p>{response}</article>')


def render_evol(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    e = d.evol_survival(cat)
    out = [kv([("attempts", e.rows), ("survived", e.survived),
               ("survival", f"{e.survived / e.rows:.0%}" if e.rows else None), ("rounds", len(e.per_round))])]
    charts = [ctx.figure(f.evol_round_figure(e))]
    if e.reasons:
        charts.append(ctx.figure(f.evol_reason_figure(e)))
    out.append('<div class="row">' + "".join(charts) + "</div>")
    out.append("<h3>Survival by operation</h3>" + table(
        ["operation", "attempts", "survived", "survival"],
        [[f"<code>{h(k)}</code>", h(fmt(n)), h(fmt(s)), h(f"{s / n:.0%}" if n else "–")]
         for k, n, s in e.per_operation]))
    if e.examples:
        out.append("<h3>Attempts to read</h3>" + note("the first attempt eliminated for each reason, and the first "
                                                      "survivor") + "".join(_attempt_card(a) for a in e.examples))
    return "\n".join(out)
