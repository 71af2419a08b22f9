"""The dashboard app through FastAPI's TestClient: pages, escaping, parameters, read-only."""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from tests.dashboards.conftest import INJECTED
from thresher.dashboards import data as d
from thresher.dashboards import panels
from thresher.dashboards.app import create_app


def _snapshot(root) -> dict:
    """Every file under the run with its size and mtime, and the catalog's bytes."""
    files = {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in sorted(root.rglob("*")) if p.is_file()}
    return {"files": files, "catalog": hashlib.sha256((root / "catalog.duckdb").read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def before(staged_run):
    return _snapshot(staged_run.root)


@pytest.fixture(scope="module")
def client(staged_run, before):
    return TestClient(create_app(staged_run))


@pytest.fixture(scope="module")
def demo_client(demo_run):
    return TestClient(create_app(demo_run))


@pytest.fixture(scope="module")
def evol_before(evol_run):
    return _snapshot(evol_run.root)


@pytest.fixture(scope="module")
def evol_client(evol_run, evol_before):
    """The demo's augmented run: the Evol-Instruct panel's run."""
    return TestClient(create_app(evol_run))


@pytest.mark.parametrize("key", [p.key for p in panels.PANELS])
def test_every_panel_page_renders_with_its_charts(client, evol_client, key):
    response = (evol_client if key == "evol" else client).get("/" if key == "overview" else f"/{key}")
    assert response.status_code == 200, response.text[-2000:]
    html = response.text
    assert "Not in this run" not in html
    assert '<script src="/static/plotly.min.js"></script>' in html
    if key != "quarantine":
        assert "Plotly.newPlot" in html
    assert f'class="active">{panels.h(panels.get_panel(key).title)}<' in html


def test_a_run_says_which_panels_it_lacks(demo_client):
    # The demo runs dedup, DSIR and a judge, but not Evol-Instruct.
    response = demo_client.get("/evol")
    assert response.status_code == 200
    assert "Not in this run." in response.text
    for present in ("/dedup", "/judges"):
        assert "Not in this run." not in demo_client.get(present).text
    judges = demo_client.get("/judges").text
    assert "judge_alpagasus_score" in judges
    # No calibration tables in the demo: the panel says how to make one, and pairs the score with nothing.
    assert "No calibration of judge_alpagasus" in judges and "<h4>Calibration" not in judges
    overview = demo_client.get("/").text
    assert overview.count("not in this run") >= 1
    assert demo_client.get("/scores").status_code == 200


def test_plotly_is_served_locally(client):
    response = client.get("/static/plotly.min.js")
    assert response.status_code == 200 and len(response.content) > 1_000_000
    assert "javascript" in response.headers["content-type"]


def _hostile_doc_ids(staged_run) -> list[str]:
    with d.read_catalog(staged_run) as cat:
        return [r[0] for r in cat.rows("SELECT doc_id FROM documents WHERE text = ? ORDER BY doc_id", [INJECTED])]


def test_document_text_and_urls_are_escaped_everywhere(client, staged_run):
    ids = _hostile_doc_ids(staged_run)
    assert len(ids) == 2
    with d.read_catalog(staged_run) as cat:
        chars = cat.scalar("SELECT text_n_chars FROM score_heuristics WHERE doc_id = ?", [ids[0]])
        cluster = cat.scalar("SELECT minhash_cluster_id FROM score_minhash_dedup WHERE doc_id = ?", [ids[0]])
    pages = [
        client.get("/samples", params={"view": "score_heuristics", "column": "text_n_chars", "lo": chars, "hi": chars}),
        client.get("/dedup", params={"source": "score_minhash_dedup", "cluster": cluster}),
    ]
    for response in pages:
        assert response.status_code == 200
        html = response.text
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
        assert "<script>window.__pwned" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
        assert 'href="javascript:' not in html
        # Every <script> on the page is ours: the library, the column picker, and the figures.
        for script in re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S):
            assert "__pwned" not in script
    assert ids[0] in pages[0].text and ids[1] in pages[1].text
    # The quarantine's raw bytes (JSON with markup inside) are escaped too.
    quarantine = client.get("/quarantine", params={"reason": "invalid_json"}).text
    assert "&lt;!---" in quarantine and "<!---" not in quarantine


@pytest.mark.parametrize(("params", "status"), [
    ({"lo": "0 OR 1=1"}, 400),
    ({"hi": "1; DROP TABLE documents"}, 400),
    ({"lo": "nan"}, 400),
    ({"page": "-1"}, 400),
    ({"per_page": "100000"}, 400),
    ({"column": 'lang_score" FROM score_langid; --'}, 404),
    ({"column": "lang_score OR 1=1"}, 404),
    ({"view": "score_langid; SELECT * FROM documents"}, 404),
    ({"view": "documents"}, 404),
    ({"order": "random; DROP TABLE x"}, 404),
])
def test_sample_viewer_rejects_injection_in_parameters(client, params, status):
    base = {"view": "score_langid", "column": "lang_score"}
    response = client.get("/samples", params=base | params)
    assert response.status_code == status, response.text[-500:]
    assert 'class="sample"' not in response.text  # no documents leaked
    api = client.get("/api/samples", params=base | params)
    assert api.status_code in (400, 404, 422)


def test_injection_in_text_parameters_matches_nothing(client, staged_run):
    quarantine = client.get("/api/quarantine", params={"reason": "x' OR '1'='1"}).json()
    assert quarantine["total"] == 0 and quarantine["rows"] == []
    assert client.get("/dedup", params={"cluster": "' OR 1=1 --"}).status_code == 404
    assert client.get("/dedup", params={"source": "dedup_clusters; DROP VIEW x"}).status_code == 404
    assert client.get("/selections", params={"selection": "selections_x' OR 1=1"}).status_code == 404
    with d.read_catalog(staged_run) as cat:  # and nothing was dropped
        assert cat.scalar("SELECT count(*) FROM documents") > 0


def test_sample_viewer_pages_through_a_band(client):
    bands = client.get("/api/bands", params={"view": "score_langid", "column": "lang_score"}).json()
    band = bands[-1]
    params = {"view": "score_langid", "column": "lang_score", "lo": band["lo"], "hi": band["hi"], "per_page": 3}
    first = client.get("/api/samples", params=params | {"page": 1}).json()
    second = client.get("/api/samples", params=params | {"page": 2}).json()
    assert first["total"] == band["rows"]
    assert {s["doc_id"] for s in first["samples"]}.isdisjoint(s["doc_id"] for s in second["samples"])
    assert all(band["lo"] <= s["value"] <= band["hi"] for s in first["samples"] + second["samples"])
    html = client.get("/samples", params=params | {"page": 2}).text
    assert "page 2 of" in html and "← previous" in html
    assert html.count('class="sample"') == 3


def test_json_endpoints(client):
    panels_json = client.get("/api/panels").json()
    assert [p["key"] for p in panels_json] == [p.key for p in panels.PANELS]
    assert {p["key"] for p in panels_json if not p["in_run"]} == {"evol"}  # an augmented run's panel
    overview = client.get("/api/overview").json()
    assert overview["funnel"]["rows_in"] == overview["funnel"]["rows_written"] + overview["funnel"]["rows_quarantined"]
    split = client.get("/api/histogram", params={"view": "score_heuristics", "column": "gopher_word_count"}).json()
    assert split["tables"], "one series per table the view holds"
    for hist in split["tables"].values():
        assert sum(hist["counts"]) + hist["below"] + hist["above"] == hist["values"]
        assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert "score_heuristics" in client.get("/api/scores").json()
    assert client.get("/api/histogram", params={"view": "nope", "column": "x"}).status_code == 404


def test_a_new_panel_plugs_in_by_view_name(client):
    def render(cat, ctx, params):
        return f"<p>edge rows: {cat.scalar('SELECT count(*) FROM dedup_edges')}</p>"

    extra = [
        panels.Panel("edgecount", "Edge count", "counts MinHash candidate pairs", "Needs dedup_edges.",
                     lambda cat: cat.has("dedup_edges"), render),
        panels.Panel("future", "Future stage", "a stage to come", "Needs a future_* view.",
                     lambda cat: any(v.startswith("future_") for v in cat.views), render),
    ]
    saved = list(panels.PANELS)
    try:
        for panel in extra:
            panels.register_panel(panel)
        html = client.get("/edgecount").text
        assert "edge rows: " in html and 'href="/edgecount"' in html
        assert "Not in this run.</strong> Needs a future_* view." in client.get("/future").text
        assert '<span class="absent" title="not in this run">Future stage</span>' in client.get("/").text
    finally:
        panels.PANELS[:] = saved


def test_missing_catalog_is_a_503_not_a_crash(tmp_path):
    response = TestClient(create_app(tmp_path)).get("/")
    assert response.status_code == 503 and "does not exist" in response.text


def test_browsing_changes_nothing_in_the_run(client, staged_run, before):
    for url in ["/", "/scores?view=score_heuristics", "/samples", "/quarantine", "/dedup", "/selections",
                "/judges", "/evol", "/api/overview", "/api/samples?view=score_langid&column=lang_score"]:
        assert client.get(url).status_code == 200
    after = _snapshot(staged_run.root)
    changed = sorted(set(after["files"].items()) ^ set(before["files"].items()))
    assert not changed, changed
    assert after == before


def test_evol_page_shows_the_survival_of_each_operation(evol_client, evol_run):
    html = evol_client.get("/evol").text
    with d.read_catalog(evol_run) as cat:
        rows = cat.rows("SELECT operation, sum(attempts), sum(survived) FROM augment_survival GROUP BY 1")
    for operation, attempts, survived in rows:
        assert f"<td><code>{panels.h(operation)}</code></td><td>{attempts:,}</td><td>{survived:,}</td>" in html
    assert "Evolutions per round" in html and "Attempts to read" in html


def test_browsing_the_augmented_run_changes_nothing_in_it(evol_client, evol_run, evol_before):
    for url in ["/", "/evol", "/judges", "/scores", "/dedup", "/api/overview"]:
        assert evol_client.get(url).status_code == 200
    assert _snapshot(evol_run.root) == evol_before
