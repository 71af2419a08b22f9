"""The train-and-compare panel: each selection against random (the eval_summary view) and the mean
held-out loss curves per arm (eval_curves), one block per eval."""

from __future__ import annotations

from thresher.dashboards import data as d
from thresher.dashboards.widgets import Params, RenderContext, fmt, h, note, table
from thresher.eval.report import curves_figure

_SUMMARY = ("SELECT eval, selection, measure, kind, seeds, mean, std, random_mean, random_std, gain, gain_pct, "
            "gain_stderr, seeds_better, verdict FROM eval_summary ORDER BY eval, measure, selection")


def eval_applies(cat: d.Catalog) -> bool:
    return cat.has("eval_summary")


def render_eval(cat: d.Catalog, ctx: RenderContext, params: Params) -> str:
    columns = ("eval", "selection", "measure", "kind", "seeds", "mean", "std", "random_mean", "random_std", "gain",
               "gain_pct", "gain_stderr", "seeds_better", "verdict")
    summary = [dict(zip(columns, row)) for row in cat.rows(_SUMMARY)]
    curves = ([dict(zip(("eval", "arm", "seed", "step", "measure", "eval_loss"), row)) for row in
               cat.rows("SELECT eval, arm, seed, step, measure, eval_loss FROM eval_curves")]
              if cat.has("eval_curves") else [])
    out = [note("Each selection and a seeded random sample of the same table trained the same small LM on the same "
                "number of tokens; loss is nats per token on held-out text (lower is better), gain = random - "
                "selection, 'better'/'worse' only beyond twice the standard error over seeds.")]
    for name in sorted({r["eval"] for r in summary}):
        rows = [r for r in summary if r["eval"] == name]
        out.append(f"<h3>{h(name)}</h3>" + table(
            ["selection", "measure", "mean ± std", "random", "gain (%)", "seeds better", "verdict"],
            [[f"<code>{h(r['selection'])}</code>", h(r["measure"]), h(f"{fmt(r['mean'])} ± {fmt(r['std'])}"),
              h(f"{fmt(r['random_mean'])} ± {fmt(r['random_std'])}"), h(f"{r['gain']:+.4f} ({r['gain_pct']:+.1f} %)"),
              h(f"{r['seeds_better']}/{r['seeds']}"), h(r["verdict"])] for r in rows]))
        mine = [c for c in curves if c["eval"] == name]
        if mine:
            arms = sorted({c["arm"] for c in mine}, key=lambda a: (a == "random", a))
            sets = sorted({c["measure"] for c in mine})
            out.append(ctx.figure(curves_figure(name, arms, sets, rows, mine)))
    return "\n".join(out)
