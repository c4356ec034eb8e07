"""Every page and its JSON API, over HTTP against a dashboard on a real socket, with figures
checked against the installation's known traffic and against the CLI's own JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from monitor import build_report
from monitor.store import MonitorStore
from tests.dashboard.conftest import Serve
from tests.dashboard.install import Install

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url(install: Install) -> str:
    # one server for the read-only tests of this module
    from dashboard import DashboardSettings, create_app
    from tests.helpers import UvicornServer

    app = create_app(
        install.registry,
        logs_url=str(install.logs),
        monitor_db=str(install.monitor_db),
        settings=DashboardSettings.from_mapping(
            {"cache_s": 0.0, "traffic_window_s": 900.0}, env={}
        ),
    )
    server = UvicornServer(app).__enter__()
    yield server.url
    server.__exit__()


def _cli_json(install: Install, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", "from mlgate.cli import main; main()", *args,
         "--home", str(install.home), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_models_page_and_api_show_route_traffic_drift_alert_and_run(
    url: str, install: Install
) -> None:
    doc = httpx.get(f"{url}/api/models").json()
    churn = next(m for m in doc["models"] if m["name"] == "churn")
    assert [m["name"] for m in doc["models"]] == ["churn", "price"]
    assert churn["route"]["champion"] == 1
    assert churn["route"]["canary"] == {"version": 2, "weight": 20.0}
    assert churn["route"]["shadows"] == [{"version": 3, "percent": 100.0}]
    by_route = {r["route"]: r for r in churn["routes"]}
    assert by_route["champion"]["requests"] == install.champion_rows
    assert by_route["canary"]["requests"] == install.canary_rows
    assert by_route["canary"]["errors"] == install.canary_errors
    assert by_route["canary"]["error_rate"] == pytest.approx(0.05)
    assert churn["drift"]["share_drifted"] == 0.5
    assert sorted(churn["drift"]["drifted_features"]) == ["f00", "f01"]
    assert churn["last_alert"]["event_type"].startswith("model.")
    assert churn["last_run"]["kind"] == "trainer.run.finished"
    assert churn["gateways"]["all_loaded"] is None  # no gateway reported

    page = httpx.get(f"{url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    row = re.search(r"<tr data-model='churn'>.*?</tr>", html, re.S)
    assert row is not None
    assert "canary v2 20%" in row.group(0)
    assert "shadow v3 100%" in row.group(0)
    assert "5.00%" in row.group(0)  # the canary's error rate
    assert "50% drifted" in row.group(0)
    assert "trainer.run.finished" in row.group(0)
    assert "<script" in html and "/static/app.js" in html
    assert "http://" not in html.replace(url, "")  # nothing fetched from elsewhere


def test_figures_agree_with_the_cli_rollout_status(url: str, install: Install) -> None:
    cli = _cli_json(install, "rollout", "status", "churn", "--window", "900")
    ours = httpx.get(f"{url}/api/models/churn").json()
    theirs = {(r["route"], r["version"]): r for r in cli["stats"]["routes"]}
    for r in ours["routes"]:
        t = theirs[(r["route"], r["version"])]
        assert r["requests"] == t["requests"]
        assert r["errors"] == t["errors"]
        assert r["p99_ms"] == pytest.approx(t["p99_ms"])
    shadow = next(a for a in ours["agreement"] if a["route"] == "shadow")
    assert shadow["compared"] == theirs[("shadow", 3)]["compared"]
    assert shadow["agreement"] == pytest.approx(theirs[("shadow", 3)]["agreement"])


def test_model_page_versions_lineage_rollout_and_series(url: str) -> None:
    doc = httpx.get(f"{url}/api/models/churn").json()
    assert [v["version"] for v in doc["versions"]] == [3, 2, 1]
    v2 = doc["versions"][1]
    assert v2["lineage"]["parent_version"] == 1
    assert v2["lineage"]["trigger"] == "drift"
    assert v2["lineage"]["metrics"]["accuracy"] == 0.84
    assert v2["roles"] == ["canary 20%"]
    assert doc["rollout"]["steps"] == [20.0, 50.0, 100.0]
    assert doc["rollout"]["step_label"] == "step 1 of 3"
    series = doc["series"]
    assert sum(series["routes"]["canary"]["requests"]) == 500
    assert sum(series["routes"]["canary"]["errors"]) == 25
    html = httpx.get(f"{url}/models/churn").text
    assert "step 1 of 3" in html
    assert html.count('<svg class="chart lines"') >= 3  # rate, p99 and agreement charts
    assert "<tr data-version='2'>" in html


def test_diff_of_two_versions(url: str) -> None:
    doc = httpx.get(f"{url}/api/models/churn/diff", params={"a": 1, "b": 2}).json()
    acc = next(m for m in doc["metrics"] if m["name"] == "accuracy")
    assert (acc["a"], acc["b"]) == (0.81, 0.84)
    assert acc["delta"] == pytest.approx(0.03)
    c = next(p for p in doc["params"] if p["name"] == "C")
    assert c["changed"] and (c["a"], c["b"]) == (1.0, 0.1)
    html = httpx.get(f"{url}/models/churn", params={"a": 1, "b": 2}).text
    assert "v1 vs v2" in html
    missing = httpx.get(f"{url}/api/models/churn/diff", params={"a": 1, "b": 99})
    assert missing.status_code == 400 and "99" in missing.json()["error"]
    bad = httpx.get(f"{url}/api/models/churn/diff", params={"a": "x", "b": 2})
    assert bad.status_code == 400 and "'x'" in bad.json()["error"]


def test_drift_grid_matches_the_monitor_report(url: str, install: Install) -> None:
    doc = httpx.get(f"{url}/api/models/churn/drift").json()
    assert (doc["version"], doc["route"], doc["metric"]) == (1, "champion", "psi")
    grid = doc["grid"]
    store = MonitorStore(install.monitor_db, read_only=True)
    try:
        report = build_report(store, "churn", version=1, route="champion", window="all")
    finally:
        store.close()
    assert [w["id"] for w in grid["windows"]] == [w["window"]["id"] for w in report["windows"]]
    for f in grid["features"]:
        expected = [
            next(x["psi"] for x in w["features"] if x["name"] == f["name"])
            for w in report["windows"]
        ]
        assert f["values"] == pytest.approx(expected)
    last = {f["name"]: f["drifted"][-1] for f in grid["features"]}
    assert last == {"f00": True, "f01": True, "f02": False, "f03": False}
    assert doc["feature"] == "f00"  # the first drifted feature is shown
    dist = doc["distributions"]["f00"]
    assert sum(dist["ref"]) == pytest.approx(1.0) and sum(dist["cur"]) == pytest.approx(1.0)
    assert len(dist["labels"]) == len(dist["ref"])
    kinds = {m["kind"] for m in doc["markers"]}
    assert kinds == {"run", "alert"}
    perf = [w["performance"] for w in grid["windows"] if w["performance"]]
    assert perf and "accuracy" in perf[0]

    html = httpx.get(f"{url}/models/churn/drift").text
    assert html.count('<rect class="cell') == 4 * len(grid["windows"])
    assert 'class="marker run"' in html and 'class="marker alert"' in html
    assert '<rect class="current"' in html and '<rect class="reference"' in html


def test_drift_page_picks_window_feature_and_statistic(url: str) -> None:
    first = httpx.get(f"{url}/api/models/churn/drift").json()["grid"]["windows"][0]["id"]
    doc = httpx.get(
        f"{url}/api/models/churn/drift",
        params={"window": first, "feature": "f02", "metric": "wasserstein"},
    ).json()
    assert doc["window"] == first and doc["feature"] == "f02" and doc["metric"] == "wasserstein"
    shadow = httpx.get(f"{url}/api/models/churn/drift", params={"key": "3|shadow"}).json()
    assert (shadow["version"], shadow["route"]) == (3, "shadow")
    html = httpx.get(f"{url}/models/churn/drift", params={"feature": "@prediction"}).text
    assert "@prediction" in html
    for params, word in (
        ({"metric": "nope"}, "metric"),
        ({"window": "abc"}, "window"),
        ({"window": 99999}, "99999"),
        ({"feature": "zzz"}, "zzz"),
    ):
        r = httpx.get(f"{url}/api/models/churn/drift", params=params)
        assert r.status_code == 400, params
        assert word in r.json()["error"]


def test_events_page_trail_outbox_and_endpoints(url: str, receiver: object) -> None:
    doc = httpx.get(f"{url}/api/events").json()
    kinds = {e["kind"] for e in doc["events"]}
    assert {"register", "rollout", "route", "trainer.run.started"} <= kinds
    states = {e["endpoint"]: e for e in doc["endpoints"]}
    down = states["http://127.0.0.1:9/hook"]
    assert down["state"] == "failing" and "refused" in down["last_error"].lower()
    assert down["delivered"] == 0 and down["pending"] > 0
    up = states[receiver.url]  # type: ignore[attr-defined]
    assert up["state"] == "ok" and up["delivered"] == len(receiver.received)  # type: ignore[attr-defined]

    runs = httpx.get(f"{url}/api/events", params={"kind": "trainer.run"}).json()
    assert {e["kind"] for e in runs["events"]} == {"trainer.run.started", "trainer.run.finished"}
    price = httpx.get(f"{url}/api/events", params={"model": "price"}).json()
    assert {e["model"] for e in price["events"]} == {"price"} and price["outbox"] == []
    drift = httpx.get(f"{url}/api/events", params={"kind": "model.drift"}).json()
    assert drift["outbox"] and {m["event_type"] for m in drift["outbox"]} == {
        "model.drift.detected"
    }
    html = httpx.get(f"{url}/events", params={"model": "churn"}).text
    assert "failing" in html and "Connection refused" in html
    unknown = httpx.get(f"{url}/api/events", params={"model": "nosuch"})
    assert unknown.status_code == 400 and "nosuch" in unknown.json()["error"]


def test_unknown_model_and_static_files(url: str) -> None:
    r = httpx.get(f"{url}/api/models/nosuch")
    assert r.status_code == 404 and "nosuch" in r.json()["error"]
    page = httpx.get(f"{url}/models/nosuch", headers={"accept": "text/html"})
    assert page.status_code == 404 and "nosuch" in page.text
    bad = httpx.get(f"{url}/api/models/Bad%20Name")
    assert bad.status_code == 400
    js = httpx.get(f"{url}/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert httpx.get(f"{url}/static/style.css").status_code == 200
    assert httpx.get(f"{url}/static/../app.py").status_code == 404


def test_fragment_is_the_main_element_only(url: str) -> None:
    r = httpx.get(f"{url}/", params={"fragment": 1})
    assert r.status_code == 200
    assert "<html" not in r.text and "<table class='models'>" in r.text


def test_no_monitor_state_yet_is_a_note_not_an_error(fresh: Install, serve: Serve) -> None:
    fresh.monitor_db.unlink()
    url = serve(fresh)
    doc = httpx.get(f"{url}/api/models").json()
    assert "monitor has not run" in doc["monitor_note"]
    assert all(m["drift"] is None for m in doc["models"])
    drift = httpx.get(f"{url}/api/models/churn/drift").json()
    assert drift["grid"] is None and "monitor has not run" in drift["note"]
    assert httpx.get(f"{url}/events").status_code == 200


def test_read_token(install: Install, serve: Serve) -> None:
    url = serve(install, read_token="reader")
    assert httpx.get(f"{url}/api/models").status_code == 401
    page = httpx.get(f"{url}/", headers={"accept": "text/html"})
    assert page.status_code == 401 and "name='token'" in page.text
    ok = httpx.get(f"{url}/api/models", headers={"authorization": "Bearer reader"})
    assert ok.status_code == 200
    with httpx.Client() as client:
        first = client.get(f"{url}/", params={"token": "reader"})
        assert first.status_code == 200
        assert client.get(f"{url}/events").status_code == 200  # the cookie it set
    assert (
        httpx.get(f"{url}/api/models", headers={"authorization": "Bearer wrong"}).status_code == 401
    )


def test_mounted_under_a_path(install: Install, serve: Serve) -> None:
    url = serve(install, base="/ui")
    html = httpx.get(f"{url}/").text
    assert "href='/ui/models/churn'" in html and "/ui/static/app.js" in html
    assert httpx.get(f"{url}/api/models/churn").status_code == 200
    assert httpx.get(url.removesuffix("/ui") + "/api/models").status_code == 404


def test_a_page_without_figures_yet_comes_as_its_frame_then_fills(
    install: Install, serve: Serve
) -> None:
    url = serve(install, cache_s=30.0)
    first = httpx.get(f"{url}/models/churn")
    assert first.status_code == 200
    assert "<main id='main' data-pending=1>" in first.text and "data-version" not in first.text
    fragment = httpx.get(f"{url}/models/churn", params={"fragment": 1})
    assert "<tr data-version='2'>" in fragment.text and "<html" not in fragment.text
    again = httpx.get(f"{url}/models/churn").text  # computed now: the page comes complete
    assert "data-pending" not in again and "<tr data-version='2'>" in again
    # a page that cannot exist is refused before any frame is sent
    assert httpx.get(f"{url}/models/nosuch").status_code == 404
    assert httpx.get(f"{url}/models/churn/drift", params={"metric": "nope"}).status_code == 400
    assert httpx.get(f"{url}/events", params={"model": "nosuch"}).status_code == 400


def test_drift_api_pages_windows_and_the_heat_map_spans_them_all(url: str) -> None:
    full = httpx.get(f"{url}/api/models/churn/drift").json()
    ids = [w["id"] for w in full["grid"]["windows"]]
    total = full["grid"]["total_windows"]
    assert total == len(ids) >= 4 and full["grid"]["next_before"] is None
    page = httpx.get(f"{url}/api/models/churn/drift", params={"limit": 2}).json()
    assert [w["id"] for w in page["grid"]["windows"]] == ids[-2:]
    assert all(len(f["values"]) == 2 for f in page["grid"]["features"])
    assert page["grid"]["next_before"] == ids[-2]
    older = httpx.get(
        f"{url}/api/models/churn/drift", params={"limit": 2, "before": ids[-2]}
    ).json()
    assert [w["id"] for w in older["grid"]["windows"]] == ids[-4:-2]
    # the overview keeps every window, whatever the page
    assert sum(c["windows"] for c in page["overview"]["windows"]) == total
    assert len(page["series"]["end_s"]) == total
    for params, word in (({"limit": 0}, "limit"), ({"before": 99999}, "before")):
        r = httpx.get(f"{url}/api/models/churn/drift", params=params)
        assert r.status_code == 400 and word in r.json()["error"]


def test_an_unreadable_segment_is_left_out_not_an_error(fresh: Install, serve: Serve) -> None:
    url = serve(fresh, traffic_window_s=86400.0)  # every row, however long the test takes
    before = httpx.get(f"{url}/api/models").json()["models"][0]["routes"]
    day = next((fresh.logs / "predictions" / "model=churn").glob("date=*"))
    (day / "w9-000001.parquet").write_bytes(b"PAR1 not a parquet file")
    r = httpx.get(f"{url}/api/models")
    assert r.status_code == 200
    assert r.json()["models"][0]["routes"] == before
    model = httpx.get(f"{url}/api/models/churn")  # agreement reads the segments too
    assert model.status_code == 200 and model.json()["agreement"]


def test_segments_are_read_once(install: Install) -> None:
    from datetime import UTC, datetime, timedelta

    from dashboard.logstats import LogReader

    reader = LogReader(str(install.logs), keep_s=1.0)  # every row is older than the span kept
    now = datetime.now(UTC)
    for _ in range(2):
        reader.requests(since=now - timedelta(days=1), until=now)
    assert reader.index.reads == len(reader.files(None, now - timedelta(days=1))) > 0
