"""From trained models to the answer: is each selection better than random, by how much, how sure?

    eval/results/<name>.parquet   one row per arm x seed x measure (eval-set loss or probe accuracy)
    eval/summary/<name>.parquet   one row per selection x measure: mean and spread over seeds, the
                                  random arm's, the gain and a verdict
    eval/curves/<name>.parquet    loss curves: arm, seed, step, train loss, each eval set's loss
    eval/runs/<name>/curves.html  the curves and the gains as a self-contained plotly page

Catalog views eval_results, eval_summary and eval_curves read them. The verdict compares the gain
(random's mean loss minus the selection's) with twice its standard error over seeds: "better" or
"worse" only when the difference is larger than that, otherwise "not distinguishable".
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pyarrow as pa

from thresher.eval.config import RANDOM_ARM, EvalConfig
from thresher.eval.data import eval_root
from thresher.storage.parquet_io import write_table_atomic
from thresher.storage.run_dir import RunDir

RESULTS_SCHEMA = pa.schema([
    pa.field("eval", pa.string(), nullable=False), pa.field("arm", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False), pa.field("measure", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # loss (nats/token, lower is better) | accuracy
    pa.field("value", pa.float64()), pa.field("train_tokens", pa.int64()), pa.field("tokens_seen", pa.int64()),
])
SUMMARY_SCHEMA = pa.schema([
    pa.field("eval", pa.string(), nullable=False), pa.field("selection", pa.string(), nullable=False),
    pa.field("measure", pa.string(), nullable=False), pa.field("kind", pa.string(), nullable=False),
    pa.field("seeds", pa.int64()), pa.field("mean", pa.float64()), pa.field("std", pa.float64()),
    pa.field("random_mean", pa.float64()), pa.field("random_std", pa.float64()),
    pa.field("gain", pa.float64()), pa.field("gain_pct", pa.float64()), pa.field("gain_stderr", pa.float64()),
    pa.field("seeds_better", pa.int64()), pa.field("verdict", pa.string()),
])
CURVES_SCHEMA = pa.schema([
    pa.field("eval", pa.string(), nullable=False), pa.field("arm", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False), pa.field("step", pa.int64(), nullable=False),
    pa.field("train_loss", pa.float64()), pa.field("measure", pa.string()), pa.field("eval_loss", pa.float64()),
])


def result_rows(name: str, metrics: list[dict]) -> list[dict]:
    rows = []
    for m in metrics:
        common = {"eval": name, "arm": m["arm"], "seed": m["seed"], "train_tokens": m["train_tokens"],
                  "tokens_seen": m["tokens_seen"]}
        rows += [{**common, "measure": set_name, "kind": "loss", "value": loss} for set_name, loss in m["eval"].items()]
        rows += [{**common, "measure": probe, "kind": "accuracy", "value": acc["acc"]}
                 for probe, acc in m["probes"].items()]
    return rows


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summary_rows(name: str, rows: list[dict]) -> list[dict]:
    """Per selection and measure: its mean over seeds against the random arm's (see the module doc)."""
    by: dict[tuple[str, str], dict[int, float]] = {}
    kinds: dict[str, str] = {}
    for row in rows:
        by.setdefault((row["arm"], row["measure"]), {})[row["seed"]] = row["value"]
        kinds[row["measure"]] = row["kind"]
    out = []
    for (arm, measure), values in sorted(by.items()):
        if arm == RANDOM_ARM:
            continue
        random = by.get((RANDOM_ARM, measure), {})
        mine, theirs = list(values.values()), list(random.values())
        mean, rmean = statistics.fmean(mine), statistics.fmean(theirs)
        lower_is_better = kinds[measure] == "loss"
        gain = (rmean - mean) if lower_is_better else (mean - rmean)
        stderr = math.sqrt(_spread(mine) ** 2 / len(mine) + _spread(theirs) ** 2 / len(theirs))
        better = sum(1 for seed, v in values.items() if seed in random
                     and ((v < random[seed]) if lower_is_better else (v > random[seed])))
        if gain > 2 * stderr and gain > 0:
            verdict = "better than random"
        elif gain < -2 * stderr and gain < 0:
            verdict = "worse than random"
        else:
            verdict = "not distinguishable"
        out.append({"eval": name, "selection": arm, "measure": measure, "kind": kinds[measure],
                    "seeds": len(mine), "mean": mean, "std": _spread(mine), "random_mean": rmean,
                    "random_std": _spread(theirs), "gain": gain,
                    "gain_pct": 100.0 * gain / rmean if rmean else math.nan, "gain_stderr": stderr,
                    "seeds_better": better, "verdict": verdict})
    return out


def curve_rows(name: str, metrics: list[dict]) -> list[dict]:
    rows = []
    for m in metrics:
        for point in m["curve"]:
            for key, value in point.items():
                if key.startswith("eval_"):
                    rows.append({"eval": name, "arm": m["arm"], "seed": m["seed"], "step": point["step"],
                                 "train_loss": point["train_loss"], "measure": key[5:], "eval_loss": value})
    return rows


def _write(run: RunDir, kind: str, name: str, rows: list[dict], schema: pa.Schema) -> Path:
    path = run.root / "eval" / kind / f"{name}.parquet"
    table = pa.Table.from_pylist(rows, schema=schema)
    write_table_atomic(path, table.to_batches(), schema)
    return path


def write_report(run: RunDir, config: EvalConfig, plan: dict, metrics: list[dict]) -> dict:
    results = result_rows(config.name, metrics)
    summary = summary_rows(config.name, results)
    curves = curve_rows(config.name, metrics)
    _write(run, "results", config.name, results, RESULTS_SCHEMA)
    _write(run, "summary", config.name, summary, SUMMARY_SCHEMA)
    _write(run, "curves", config.name, curves, CURVES_SCHEMA)
    plot = write_plot(eval_root(run, config.name) / "curves.html", config, summary, curves)
    return {"name": config.name, "budget_tokens": plan["budget_tokens"], "tokens_seen": metrics[0]["tokens_seen"],
            "seeds": list(config.seeds), "summary": summary, "plot": str(plot.relative_to(run.root)),
            "overlap": plan["overlap"], "parameters": metrics[0]["parameters"],
            "train_seconds": round(sum(m["seconds"] for m in metrics), 1)}


def markdown(report: dict) -> str:
    lines = [f"# eval {report['name']}: selections against random at {report['budget_tokens']:,} tokens",
             "", f"{len(report['seeds'])} seeds; {report['tokens_seen']:,} tokens seen per model "
             f"({report['parameters']:,} parameters). Loss in nats per token (lower is better); gain = random - "
             "selection.", "",
             "| selection | measure | mean ± std | random | gain (%) | seeds better | verdict |",
             "|---|---|---|---|---|---|---|"]
    for row in report["summary"]:
        lines.append(f"| {row['selection']} | {row['measure']} | {row['mean']:.4f} ± {row['std']:.4f} | "
                     f"{row['random_mean']:.4f} ± {row['random_std']:.4f} | {row['gain']:+.4f} "
                     f"({row['gain_pct']:+.1f} %) | {row['seeds_better']}/{row['seeds']} | {row['verdict']} |")
    if report["overlap"]:
        lines += ["", "**Eval sets overlap training data** (on_overlap: warn): " + "; ".join(report["overlap"])]
    return "\n".join(lines)


def curves_figure(name: str, arms: list[str], sets: list[str], summary: list[dict], curves: list[dict]):
    """Mean eval loss over training per arm (one panel per eval set) and each selection's gain with
    twice its standard error (the run's plot and the dashboard's)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(sets) + 1, subplot_titles=[f"loss on {s}" for s in sets]
                           + ["gain over random (nats/token)"])
    for col, set_name in enumerate(sets, 1):
        for arm in arms:
            points: dict[int, list[float]] = {}
            for row in curves:
                if row["arm"] == arm and row["measure"] == set_name:
                    points.setdefault(row["step"], []).append(row["eval_loss"])
            steps = sorted(points)
            figure.add_trace(go.Scatter(x=steps, y=[statistics.fmean(points[s]) for s in steps], name=arm,
                                        legendgroup=arm, showlegend=col == 1, mode="lines+markers"), row=1, col=col)
    losses = [r for r in summary if r["kind"] == "loss"]
    figure.add_trace(go.Bar(x=[f"{r['selection']} / {r['measure']}" for r in losses], y=[r["gain"] for r in losses],
                            error_y={"type": "data", "array": [2 * r["gain_stderr"] for r in losses]},
                            name="gain ± 2 s.e.", showlegend=False), row=1, col=len(sets) + 1)
    figure.update_layout(title=f"thresher eval {name}", height=420, width=420 * (len(sets) + 1))
    return figure


def write_plot(path: Path, config: EvalConfig, summary: list[dict], curves: list[dict]) -> Path:
    figure = curves_figure(config.name, config.arms, [s.name for s in config.eval_sets], summary, curves)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    figure.write_html(str(tmp), include_plotlyjs=True, full_html=True)
    tmp.replace(path)
    return path


def stored_reports(run_dir: str | Path, name: str | None = None) -> list[dict]:
    """The reports of the evals already run in `run_dir` (summary tables + plan.json), by name."""
    import json

    import pyarrow.parquet as pq

    run = RunDir(run_dir)
    reports = []
    for path in sorted((run.root / "eval" / "summary").glob("*.parquet")):
        if name is not None and path.stem != name:
            continue
        plan = json.loads((eval_root(run, path.stem) / "plan.json").read_text(encoding="utf-8"))
        plot = eval_root(run, path.stem) / "curves.html"
        reports.append({"name": path.stem, "budget_tokens": plan["budget_tokens"],
                        "seeds": plan["config"]["seeds"], "summary": pq.read_table(path).to_pylist(),
                        "overlap": plan["overlap"],
                        "plot": str(plot.relative_to(run.root)) if plot.is_file() else None})
    return reports
