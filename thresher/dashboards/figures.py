"""Plotly figures from the panel data of `thresher.dashboards.data` (no queries here)."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from thresher.dashboards.data import (
    Calibration,
    DedupSummary,
    DistributionComparison,
    EvolSurvival,
    FitDistribution,
    Funnel,
    FunnelStep,
    Histogram,
)

ACCENT = "#2f6f9f"
SELECTED = "#d9822b"
MUTED = "#9aa7b1"
PALETTE = ("#2f6f9f", "#d9822b", "#5a9e6f", "#b5495b", "#7f6bb3", "#8c7b5b", "#4c9fa8", "#c7a13b")
_FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12, color="#1f2933")


def _layout(fig: go.Figure, title: str, *, height: int = 320, **kwargs) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14)),
        template="plotly_white", height=height, font=_FONT, bargap=0.05,
        margin=dict(l=55, r=20, t=48, b=45), **kwargs,
    )
    return fig


def _log_toggle(fig: go.Figure) -> None:
    """Buttons that switch the y axis between linear and log: long tails hide small bars."""
    fig.update_layout(updatemenus=[dict(
        type="buttons", direction="left", x=1, xanchor="right", y=1, yanchor="top", showactive=True,
        pad=dict(r=2, t=2), font=dict(size=10), bgcolor="rgba(255,255,255,0.8)", bordercolor="#cbd2d9",
        buttons=[dict(label="linear", method="relayout", args=[{"yaxis.type": "linear"}]),
                 dict(label="log", method="relayout", args=[{"yaxis.type": "log"}])],
    )])


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def share_text(step: FunnelStep) -> str:
    """A step's rows and its share of its table's first step, as the report prints them."""
    return f"{step.rows:,}" if step.share is None else f"{step.rows:,} ({step.share:.1%})"


def funnel_figure(funnel: Funnel) -> go.Figure:
    steps = funnel.steps
    # The shares are computed per table in thresher.dashboards.summary, not by plotly.js, so the
    # chart, the table under it and the JSON API say the same numbers.
    fig = go.Figure(go.Funnel(
        y=[s.label for s in steps], x=[s.rows for s in steps], text=[share_text(s) for s in steps],
        textinfo="text", customdata=[s.detail for s in steps],
        hovertemplate="%{y}: %{text}<br>%{customdata}<extra></extra>",
        marker=dict(color=[PALETTE[i % len(PALETTE)] for i in range(len(steps))]),
        connector=dict(line=dict(color=MUTED, width=1)),
    ))
    scope = f"{funnel.table}: " if funnel.table else ""
    return _layout(fig, f"Stage funnel of {scope}rows in → written → kept → selected",
                   height=max(260, 70 * len(steps) + 90), yaxis=dict(automargin=True))


def quarantine_figure(funnel: Funnel) -> go.Figure:
    reasons = funnel.quarantine_reasons
    fig = go.Figure(go.Bar(
        x=list(reasons.values()), y=list(reasons), orientation="h", marker_color=SELECTED,
        text=[f"{n:,}" for n in reasons.values()], textposition="auto",
        hovertemplate="%{y}: %{x:,} rows<extra></extra>",
    ))
    total = sum(reasons.values())
    largest = max(reasons.values(), default=1)
    scope = f" of {funnel.table}" if funnel.table else ""
    return _layout(fig, f"Quarantined rows{scope} by reason ({total:,})", height=max(220, 34 * len(reasons) + 100),
                   yaxis=dict(autorange="reversed", automargin=True),
                   xaxis=dict(title="rows", tick0=0, dtick=max(1, math.ceil(largest / 6)), tickformat=",d"))


def _range_text(h: Histogram) -> list[str]:
    if h.integer and h.width == 1:
        return [_fmt(c) for c in h.centers]
    edges = h.edges
    return [f"[{_fmt(a)}, {_fmt(b)})" for a, b in zip(edges[:-1], edges[1:])]


def histogram_note(h: Histogram) -> str:
    parts = [f"{h.values:,} values"]
    if h.missing:
        parts.append(f"{h.missing:,} missing")
    if h.values:
        parts.append(f"min {_fmt(h.min)}, mean {_fmt(h.mean)}, max {_fmt(h.max)}")
    if h.below or h.above:
        parts.append(f"not shown: {h.below:,} below, {h.above:,} above the 0.5–99.5 percentile range")
    return "; ".join(parts)


def histogram_figure(h: Histogram, *, height: int = 300, compact: bool = False, title: bool = True,
                     highlight: tuple[float | None, float | None] | None = None) -> go.Figure:
    """`compact`: a small multiple; `title=False` leaves the title to the page; `highlight`
    shades a (lo, hi) range, e.g. the band the sample viewer shows."""
    fig = go.Figure(go.Bar(
        x=h.centers, y=h.counts, width=[h.width] * len(h.counts), marker_color=ACCENT,
        customdata=_range_text(h), hovertemplate="%{customdata}: %{y:,}<extra></extra>",
    ))
    if h.type.upper() == "BOOLEAN":
        fig.update_xaxes(tickvals=[0, 1], ticktext=["false", "true"])
    scope = f" ({h.table})" if h.table else ""
    text = (h.column if compact else f"{h.view}.{h.column}{scope}") if title else ""
    _layout(fig, text, height=height, xaxis=dict(title=None if compact else h.column),
            yaxis=dict(title=None if compact else (h.table or "rows")))
    if highlight is not None and h.counts:
        edges = h.edges
        lo = edges[0] if highlight[0] is None else max(highlight[0], edges[0])
        hi = edges[-1] if highlight[1] is None else min(highlight[1], edges[-1])
        if hi >= lo:
            fig.add_vrect(x0=lo, x1=hi if hi > lo else lo + h.width * 0.05, fillcolor=SELECTED, opacity=0.2,
                          line_width=0, layer="below")
    if compact:
        fig.update_layout(margin=dict(l=45, r=10, t=34 if title else 10, b=30), title=dict(font=dict(size=12)))
    _log_toggle(fig)
    return fig


def cluster_size_figure(summary: DedupSummary) -> go.Figure:
    sizes = summary.size_counts
    fig = go.Figure(go.Bar(
        x=[str(s) for s, _ in sizes], y=[n for _, n in sizes], marker_color=ACCENT,
        hovertemplate="clusters of %{x} documents: %{y:,}<extra></extra>",
    ))
    _layout(fig, f"Duplicate clusters by size ({summary.view})",
            xaxis=dict(title="documents in the cluster", type="category"), yaxis=dict(title="clusters"))
    _log_toggle(fig)
    return fig


def comparison_figure(c: DistributionComparison, *, height: int = 300) -> go.Figure:
    """Pool, selection (and random baseline) as shares of each, on the same bins."""
    fig = go.Figure()
    series = [("pool", c.pool, c.pool_rows, MUTED), ("selected", c.selected, c.selected_rows, SELECTED)]
    if c.baseline is not None:
        series.append(("random baseline", c.baseline, c.baseline_rows, "#5a9e6f"))
    for name, counts, rows, color in series:
        total = sum(counts) or 1
        fig.add_bar(x=c.centers, y=[n / total for n in counts], name=f"{name} ({rows:,})", marker_color=color,
                    opacity=0.7, width=[c.width] * len(counts),
                    hovertemplate=f"%{{x:.4g}}: %{{y:.2%}}<extra>{name}</extra>")
    _layout(fig, f"{c.column}: pool vs {c.selection}", height=height + 30, barmode="overlay",
            xaxis=dict(title=f"{c.view}.{c.column}"), yaxis=dict(title="share", tickformat=".0%"),
            legend=dict(orientation="h", y=-0.3, yanchor="top", x=0))
    fig.update_layout(margin=dict(b=90))
    return fig


def bucket_figure(title: str, buckets: list[int], series: list[tuple[str, list[float | None]]]) -> go.Figure:
    """Grouped bars over hashed n-gram buckets: p_target, p_raw, p_selected, p_random, ..."""
    fig = go.Figure()
    keys = [str(b) for b in buckets]
    for i, (name, values) in enumerate(series):
        fig.add_bar(x=keys, y=values, name=name, marker_color=PALETTE[i % len(PALETTE)],
                    hovertemplate=f"bucket %{{x}}: %{{y:.3g}}<extra>{name}</extra>")
    _layout(fig, title, barmode="group", height=360, xaxis=dict(title="n-gram bucket", type="category"),
            yaxis=dict(title="probability"), legend=dict(orientation="h", y=-0.25, yanchor="top"))
    fig.update_layout(margin=dict(b=95))
    return fig


def fit_figure(t: FitDistribution) -> go.Figure:
    kl = "" if t.kl_target_raw is None else f" (KL(target‖raw) {t.kl_target_raw:.3f} nats)"
    return bucket_figure(f"DSIR fit {t.fit_hash}: target {t.target} vs raw, top {len(t.buckets)} buckets{kl}",
                         t.buckets, [(f"p_target ({t.target})", t.p_target), ("p_raw", t.p_raw)])


def report_figure(selection: str, target: dict) -> go.Figure:
    """One target of the DSIR stage's selection report (thresher.dsir.report.selection_report)."""
    top = target.get("top_buckets") or []
    series = [(name, [b.get(name) for b in top]) for name in ("p_target", "p_raw", "p_selected", "p_random")
              if any(b.get(name) is not None for b in top)]
    return bucket_figure(f"{selection}: target {target.get('target')} vs raw vs selected vs random, "
                         f"top {len(top)} buckets", [int(b.get("bucket", 0)) for b in top], series)


def calibration_figure(c: Calibration) -> go.Figure:
    fig = go.Figure()
    fig.add_heatmap(x=c.heat_x, y=c.heat_y, z=c.heat, colorscale="Blues", showscale=False,
                    hovertemplate=f"{c.x} %{{x:.3g}}<br>{c.y} %{{y:.3g}}<br>%{{z:,}} rows<extra></extra>")
    fig.add_scatter(x=c.x_centers, y=c.y_mean, mode="lines+markers", name=f"mean {c.y}", line=dict(color=SELECTED),
                    customdata=c.counts, hovertemplate="%{x:.3g}: mean %{y:.3g} (%{customdata:,} rows)<extra></extra>")
    corr = []
    if c.pearson is not None:
        corr.append(f"Pearson {c.pearson:.3f}")
    if c.spearman is not None:
        corr.append(f"Spearman {c.spearman:.3f}")
    title = f"{c.y} against {c.x}" + (f" ({', '.join(corr)}; {c.pairs:,} pairs)" if corr else "")
    return _layout(fig, title, height=360, xaxis=dict(title=c.x), yaxis=dict(title=c.y), showlegend=False)


def evol_round_figure(e: EvolSurvival) -> go.Figure:
    rounds = [r for r, _, _ in e.per_round]
    fig = go.Figure()
    fig.add_bar(x=rounds, y=[k for _, _, k in e.per_round], name="survived", marker_color=ACCENT)
    fig.add_bar(x=rounds, y=[n - k for _, n, k in e.per_round], name="eliminated", marker_color=SELECTED)
    return _layout(fig, f"Evolutions per {e.round_column}: survived vs eliminated", barmode="stack",
                   xaxis=dict(title=e.round_column, type="category"), yaxis=dict(title="instructions"))


def evol_reason_figure(e: EvolSurvival) -> go.Figure:
    fig = go.Figure(go.Bar(x=[n for _, n in e.reasons], y=[r for r, _ in e.reasons], orientation="h",
                           marker_color=SELECTED, hovertemplate="%{y}: %{x:,}<extra></extra>"))
    return _layout(fig, "Elimination reasons", height=max(220, 34 * len(e.reasons) + 100),
                   yaxis=dict(autorange="reversed", automargin=True), xaxis=dict(title="instructions"))
