"""Headless Chromium against ``mlgate ui`` (a real server process): every page loads with no
console error and shows the figures of the JSON API; an action with the admin token changes
the route and without it is refused. Screenshots go to ``$MLGATE_SCREENSHOTS`` when set (the
README's are made so), else to the test's temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dashboard.cdp import Browser, chromium_path
from tests.dashboard.conftest import ADMIN
from tests.dashboard.install import Install
from tests.helpers import free_port, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_path() is None,
        reason="Chromium is not installed (Debian: apt-get install -y chromium); "
        "the JSON endpoints are still tested in test_pages.py and test_actions.py",
    ),
]


@pytest.fixture
def ui(fresh: Install) -> Iterator[str]:
    """``mlgate ui`` on the installation, as a user starts it."""
    port = free_port()
    env = {**os.environ, "MLGATE_ADMIN_TOKEN": ADMIN}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mlgate.cli import main; main()", "ui",
         "--home", str(fresh.home), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/models", timeout=5).status_code == 200
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            return False

    try:
        wait_for(up, 90, 0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


def _shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("MLGATE_SCREENSHOTS") or tmp_path / "shots")


def test_every_page_loads_and_shows_the_api_figures(
    ui: str, browser: Browser, fresh: Install, tmp_path: Path
) -> None:
    shots = _shots(tmp_path)
    api = httpx.get(f"{ui}/api/models").json()

    browser.open(f"{ui}/")
    names = browser.js("[...document.querySelectorAll('tr[data-model]')].map(r => r.dataset.model)")
    assert names == [m["name"] for m in api["models"]]
    churn_row = browser.js("document.querySelector(\"tr[data-model='churn']\").innerText")
    canary = next(r for r in api["models"][0]["routes"] if r["route"] == "canary")
    assert f"{100 * canary['error_rate']:.2f}%" in churn_row
    assert "canary v2 20%" in churn_row and "50% drifted" in churn_row
    browser.screenshot(shots / "dashboard-models.png")

    model = httpx.get(f"{ui}/api/models/churn").json()
    browser.open(f"{ui}/models/churn?a=1&b=2")
    versions = browser.js(
        "[...document.querySelectorAll('tr[data-version]')].map(r => +r.dataset.version)"
    )
    assert versions == [v["version"] for v in model["versions"]]
    assert browser.js("document.querySelectorAll('svg.chart.lines').length") >= 3
    assert "v1 vs v2" in browser.js("document.getElementById('diff').innerText")
    browser.screenshot(shots / "dashboard-model.png")

    drift = httpx.get(f"{ui}/api/models/churn/drift").json()
    browser.open(f"{ui}/models/churn/drift")
    cells = browser.js("document.querySelectorAll('svg.heat rect.cell').length")
    assert cells == len(drift["grid"]["features"]) * len(drift["grid"]["windows"])
    current = browser.js(
        "[...document.querySelectorAll('svg.bars rect.current')].map(r => +r.dataset.share)"
    )
    assert current == pytest.approx(drift["distributions"][drift["feature"]]["cur"], abs=1e-6)
    assert browser.js("document.querySelectorAll('svg.heat .marker.run').length") >= 1
    browser.screenshot(shots / "dashboard-drift.png")

    events = httpx.get(f"{ui}/api/events").json()
    browser.open(f"{ui}/events")
    rows = browser.js("document.querySelectorAll('table.trail tr').length") - 1
    assert rows == len(events["events"])
    assert "failing" in browser.js("document.querySelector('table.endpoints').innerText")
    browser.screenshot(shots / "dashboard-events.png")

    # the page refreshes itself without a reload
    browser.js("document.body.dataset.marker = 'kept'")
    browser.wait_js("document.body.dataset.refreshedAt !== undefined", timeout_s=40)
    assert browser.js("document.body.dataset.marker") == "kept"
    assert browser.errors == []


def test_promote_from_the_page_needs_the_token_and_a_confirmation(
    ui: str, browser: Browser, fresh: Install
) -> None:
    browser.open(f"{ui}/models/churn")
    click = "document.querySelector(\"button.act[data-action='promote']\").click()"
    # without the token: refused, nothing changes
    browser.js(click)
    browser.wait_js("document.getElementById('toast').className.includes('error')")
    assert "Authorization" in browser.js("document.getElementById('toast').textContent")
    assert fresh.registry.route("churn").champion == 1

    browser.js(
        f"const t = document.getElementById('admin-token'); t.value = '{ADMIN}';"
        " t.dispatchEvent(new Event('change'))"
    )
    browser.js(click)
    browser.wait_js("document.getElementById('confirm').open")
    text = browser.js("document.getElementById('confirm-text').textContent")
    assert "Promote canary v2" in text
    browser.js("document.getElementById('confirm-cancel').click()")
    browser.wait_js("!document.getElementById('confirm').open")
    assert fresh.registry.route("churn").champion == 1  # cancelled: nothing changed

    browser.js(click)
    browser.wait_js("document.getElementById('confirm').open")
    browser.js("document.getElementById('confirm-ok').click()")
    wait_for(lambda: fresh.registry.route("churn").champion == 2, 30, 0.1)
    event = fresh.registry.events("churn")[-1]
    assert (event.kind, event.actor) == ("promote", "dashboard")
    browser.wait_js("document.getElementById('toast').textContent.startsWith('done')")
    # the browser logs the refused request (401) as an error; nothing else may be logged
    assert [e for e in browser.errors if "status of 401" not in e] == []
