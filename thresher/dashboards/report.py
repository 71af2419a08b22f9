"""The static report: one self-contained HTML file with every panel (plotly.js inlined once).

The file needs no server and no network: open it from disk, mail it, attach it to a Prefect
artifact. Panels that do not apply to the run are listed with "not in this run".
"""

from __future__ import annotations

import os
from pathlib import Path

from plotly.offline import get_plotlyjs

from thresher.dashboards import data as d
from thresher.dashboards import panels as p
from thresher.storage.run_dir import RunDir


def render_report(run_dir: str | Path | RunDir) -> str:
    """The report's HTML, every panel rendered statically."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    ctx = p.RenderContext(static=True)
    sections = []
    with d.read_catalog(run) as cat:
        name = d.run_name(run)
        for panel in p.PANELS:
            body = panel.render(cat, ctx, {}) if panel.applies(cat) else p.not_in_run(panel)
            sections.append(p.section(panel, body))
        nav = p.nav(cat, ctx, None)
    # The library is inlined once, before any figure: each figure's script calls Plotly.newPlot.
    head = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    return p.page(title=f"thresher report · {name}", run_name=name, run_root=str(run.root), nav_html=nav,
                  body="\n".join(sections), head=head)


def write_report(run_dir: str | Path | RunDir, out_path: str | Path) -> Path:
    """Write the report to `out_path` (atomically) and return its resolved path."""
    out = Path(out_path).expanduser().resolve()
    html = render_report(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
