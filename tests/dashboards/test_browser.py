"""The dashboard and the report in a real browser: headless Chromium through Selenium.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver); the
test skips without them. Selenium is given the driver's path, so Selenium Manager never runs (it
would try to download one). With THRESHER_SAVE_SCREENSHOT=1 the overview's screenshot is also
copied to docs/dashboard.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from thresher.dashboards.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} "
           "(Debian: apt-get install chromium chromium-driver)",
)

# Per chart on the page: how many points its traces hold (0 = drawn empty, -1 = not drawn yet).
CHART_POINTS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
  if (!gd.data || !gd.querySelector('.plot-container .main-svg')) return -1;
  return gd.data.reduce(function (n, t) {
    var v = t.z || t.y || t.x || [];
    return n + v.length;
  }, 0);
});
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(run):
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the dashboard did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(staged_run):
    yield from _serve(staged_run)


@pytest.fixture(scope="module")
def evol_server(evol_run):
    yield from _serve(evol_run)  # the Evol-Instruct panel's run: the demo's augmented run


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1100",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait_for_charts(driver, minimum: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    points: list[int] = []
    while time.monotonic() < deadline:
        points = driver.execute_script(CHART_POINTS)
        if len(points) >= minimum and all(p > 0 for p in points):
            return points
        time.sleep(0.2)
    pytest.fail(f"charts did not render with data within {timeout:.0f} s: points per chart {points}")


def _errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_dashboard_renders_its_charts(server, browser, tmp_path):
    browser.get(server + "/")
    points = _wait_for_charts(browser, minimum=2)  # the stage funnel and quarantine reasons
    assert browser.find_element("css selector", "nav a.active").text == "Overview"
    time.sleep(0.5)  # let the last frame paint
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    if os.environ.get("THRESHER_SAVE_SCREENSHOT") == "1":
        (REPO_ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO_ROOT / "docs" / "dashboard.png")
    assert not _errors(browser)
    assert points[0] >= 2

    browser.get(server + "/scores?view=score_heuristics")
    points = _wait_for_charts(browser, minimum=10)
    assert len(points) == 1 + len(browser.find_elements("css selector", ".card"))

    for page, minimum in (("/selections", 3), ("/dedup", 1), ("/judges", 3)):
        browser.get(server + page)
        _wait_for_charts(browser, minimum=minimum)
        assert not _errors(browser), page


def test_evol_panel_renders_its_charts(evol_server, browser):
    browser.get(evol_server + "/evol")
    _wait_for_charts(browser, minimum=1)
    assert not _errors(browser)


def test_hostile_text_does_not_run(server, browser, staged_run):
    from tests.dashboards.conftest import INJECTED
    from thresher.dashboards import data as d

    with d.read_catalog(staged_run) as cat:
        chars = cat.scalar("SELECT any_value(text_n_chars) FROM score_heuristics JOIN documents USING (doc_id) "
                           "WHERE text = ?", [INJECTED])
    browser.get(f"{server}/samples?view=score_heuristics&column=text_n_chars&lo={chars}&hi={chars}")
    _wait_for_charts(browser, minimum=1)
    assert browser.execute_script("return window.__pwned") is None
    texts = [e.text for e in browser.find_elements("css selector", "pre.doc")]
    assert texts and all("<script>window.__pwned = 1</script>" in t for t in texts)


def test_report_renders_offline_from_a_file(staged_report, browser):
    browser.get(staged_report.as_uri())
    points = _wait_for_charts(browser, minimum=40, timeout=60)
    assert len(points) >= 40
    assert not _errors(browser)
