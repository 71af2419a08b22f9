"""The dashboard's panels, shared by the web app and the static report: the built-in panels are
registered here (one render module per group), and the helpers panels are made of are re-exported
so that a stage can write and `register_panel` its own.

    widgets          escaping, formatting, tables, pagers, form controls, request parameters
    panel_registry   Panel, PANELS, register_panel, navigation
    layout           the page: style sheet, script, skeleton
    render_run       overview, score histograms, sample viewer, quarantine
    render_stages    duplicate clusters, selections & DSIR
    render_models    judges and their calibrations, Evol-Instruct survival
    render_eval      train-and-compare: selections against random
"""

from __future__ import annotations

from thresher.dashboards import data as d
from thresher.dashboards.layout import CSS, SYNC_JS, page
from thresher.dashboards.panel_registry import (
    PANELS,
    Panel,
    Renderer,
    get_panel,
    nav,
    not_in_run,
    register_panel,
    section,
)
from thresher.dashboards.render_eval import eval_applies, render_eval
from thresher.dashboards.render_models import render_evol, render_judges
from thresher.dashboards.render_run import render_overview, render_quarantine, render_samples, render_scores
from thresher.dashboards.render_stages import dedup_applies, render_dedup, render_selections, selections_applies
from thresher.dashboards.widgets import (
    PLOTLY_CONFIG,
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

__all__ = [
    "CSS", "PANELS", "PLOTLY_CONFIG", "SYNC_JS", "Panel", "Params", "RenderContext", "Renderer", "doc_text",
    "fmt", "get_panel", "h", "kv", "nav", "not_in_run", "note", "page", "pager", "param_choice", "param_float",
    "param_int", "param_str", "register_panel", "section", "select", "table",
]

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
          "Needs the dedup stage's tables (score_exact_dedup, score_minhash_dedup, dedup_*) or SemDeDup's.",
          dedup_applies, render_dedup),
    Panel("selections", "Selections & DSIR", "selection counts and funnels; DSIR log weights pool vs selected; "
          "target distributions", "Needs a selection (`thresher select`) or the DSIR stage's tables.",
          selections_applies, render_selections),
    Panel("judges", "Judge calibration", "judge score distributions, parse failures with their raw output, "
          "score against reference labels", "Needs a judge's sidecar: run `thresher judge run` (and "
          "`thresher judge calibrate` to compare it with reference labels).",
          lambda cat: bool(d.judge_views(cat)), render_judges),
    Panel("evol", "Evol survival", "Evol-Instruct attempts surviving per round and operation, elimination reasons",
          "Needs the augment stage's augment_attempts and augment_survival views: open the dashboard on an "
          "augmented run (`thresher augment`, by default <run>/augment/<name>/).", d.evol_applies, render_evol),
    Panel("eval", "Train & compare", "each selection against random data of the same size: held-out loss over "
          "seeds, gain, verdict, loss curves", "Needs the eval stage's tables: run `thresher eval run`.",
          eval_applies, render_eval),
):
    register_panel(_panel)

