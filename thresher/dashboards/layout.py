"""The page around the panels: style sheet, the column picker's script, and the HTML skeleton."""

from __future__ import annotations

from thresher.dashboards.widgets import h

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


def page(*, title: str, run_name: str, run_root: str, nav_html: str, body: str, head: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{h(title)}</title><style>{CSS}</style>{head}<script>{SYNC_JS}</script></head><body>"
        f'<header class="top"><h1>thresher · {h(run_name)}</h1><span class="path">{h(run_root)}</span></header>'
        f"{nav_html}<main>{body}</main></body></html>"
    )


