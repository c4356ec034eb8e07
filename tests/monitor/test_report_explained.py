"""The drift report explains itself: a summary of every column sorted by drift score, the test
that decided each verdict and why (minimum rows, the k-window rule), a window × column view over
time, bin labels that are not cut off, and no ``vNone`` on an empty report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import MonitorConfig, build_report
from monitor.report.html import bars_svg, render_html
from monitor.report.verdicts import annotate, explain
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier

RULES: dict[str, Any] = {"min_rows": 500, "consecutive": 2,
                         "thresholds": {"psi": 0.2, "wasserstein": 0.1, "js": 0.1}}  # fmt: skip


def _feature(**figures: Any) -> dict[str, Any]:
    thresholds = {"psi": 0.2, "wasserstein": 0.1, "js": 0.1, "null_rate": 0.1,
                  "unseen_share": 0.1}  # fmt: skip
    signals = {k: v is not None and v >= thresholds[k] for k, v in figures.items()
               if k in thresholds}  # fmt: skip
    base = {"name": "x", "kind": "numeric", "drifted": False, "streak": 0, "psi": 0.01,
            "wasserstein": 0.01, "js": 0.01}  # fmt: skip
    base.update(thresholds=thresholds, signals=signals)
    return {**base, **figures}


def test_each_verdict_names_its_rule() -> None:
    rules = {"min_rows": 500, "consecutive": 2}
    small = explain(_feature(wasserstein=0.67), window_rows=80, **rules)
    assert small["verdict"] == "stable" and small["decided_by"] == "wasserstein"
    assert "80 rows < min_rows 500" in small["reason"]
    first = explain(_feature(wasserstein=0.67, streak=1), window_rows=1000, **rules)
    assert first["verdict"] == "watch" and "1 of the 2 consecutive windows" in first["reason"]
    drifted = explain(_feature(psi=0.9, wasserstein=0.3, streak=2, drifted=True),
                      window_rows=1000, **rules)  # fmt: skip
    assert drifted["verdict"] == "drifted" and drifted["decided_by"] == "psi"
    assert drifted["score"] == pytest.approx(4.5) and "PSI 0.9 ≥ 0.2" in drifted["reason"]
    calm = explain(_feature(js=0.05), window_rows=1000, **rules)
    assert calm["verdict"] == "stable" and "closest: Jensen-Shannon 0.05 of 0.1" in calm["reason"]


def test_bin_labels_are_whole_and_inside_the_picture() -> None:
    labels = ["< -1234.5", *(f"(-1234.{i}, 5678.{i}]" for i in range(9)), "(null)"]
    svg = bars_svg(labels, [0.1] * 11, [0.1] * 11)
    height = float(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    for label in labels:
        assert f">{label}</text>" in svg.replace("&lt;", "<")  # not truncated
    # slanted up-left from the axis: the bottom margin holds the longest label
    assert height - 110 >= 0.6 * 8 * max(len(lab) for lab in labels) * 0.7


@pytest.fixture
def drifted_install(registry: Registry, logs: Logs, make_monitor: Any) -> Any:
    est, ref = fit_classifier(d=6, rows=5000, seed=3)
    mv = registry.register("shop", est, reference=ref)
    rng = np.random.default_rng(5)
    logs.predictions(mv, rng.normal(size=(3000, 6)), estimator=est)
    moved = rng.normal(size=(3000, 6))
    moved[:, [1, 4]] += 1.5
    logs.predictions(mv, moved, estimator=est, start_us=T0_US + 3000 * 1000)
    monitor = make_monitor(MonitorConfig(window_rows=1000, min_rows=500, consecutive=2))
    monitor.run_once()
    return monitor


def test_report_sorts_columns_by_score_and_shows_time(drifted_install: Any, tmp_path: Path) -> None:
    store = drifted_install.store
    doc = annotate(build_report(store, "shop"), **RULES)
    history = annotate(build_report(store, "shop", window="all"), **RULES)
    verdicts = {f["name"]: f["verdict"] for f in doc["features"]}
    assert verdicts["f01"] == verdicts["f04"] == "drifted"
    assert {v for k, v in verdicts.items() if k not in ("f01", "f04")} == {"stable"}
    html = render_html(doc, store, history=history)
    summary = html.split("<h2>Summary</h2>", 1)[1].split("</table>", 1)[0]
    order = re.findall(r"<tr><td class='n'>([^<]+)</td>", summary)
    assert set(order[:2]) == {"f01", "f04"}  # highest drift score first
    assert "decided by" in summary and "consecutive windows (k = 2)" in summary
    over_time = html.split("<h2>Over time</h2>", 1)[1].split("</svg>", 1)[0]
    assert over_time.count("<rect") == 6 * 6  # 6 windows × 6 features
    assert over_time.count('stroke="#1f2933"') >= 2 * 2  # drifted cells outlined
    assert "vNone" not in html and "sortable" in html
    predictions = {c["name"]: c for c in doc["prediction"]["columns"]}
    assert all(c["reason"] and c["verdict"] for c in predictions.values())
    (tmp_path / "report.html").write_text(html)


def test_empty_report_has_no_version_none(registry: Registry, make_monitor: Any) -> None:
    est, ref = fit_classifier(d=3, rows=500, seed=1)
    registry.register("quiet", est, reference=ref)
    monitor = make_monitor()
    monitor.run_once()
    html = render_html(annotate(build_report(monitor.store, "quiet"), **RULES), monitor.store)
    assert "vNone" not in html and "quiet" in html


@pytest.mark.slow
def test_report_renders_in_a_browser(drifted_install: Any, tmp_path: Path) -> None:
    from tests.dashboard.cdp import Browser, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    store = drifted_install.store
    doc = annotate(build_report(store, "shop"), **RULES)
    history = annotate(build_report(store, "shop", window="all"), **RULES)
    page = tmp_path / "report.html"
    page.write_text(render_html(doc, store, history=history))
    (tmp_path / "profile").mkdir()
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        first = browser.js("document.querySelector('table.summary tbody tr td').textContent")
        assert first in ("f01", "f04")
        # click "column" twice: sorted by name, descending, then ascending
        browser.js("document.querySelector('table.summary th').click()")
        browser.js("document.querySelector('table.summary th').click()")
        names = browser.js(
            "Array.from(document.querySelectorAll('table.summary tbody tr'))"
            ".map(r => r.cells[0].textContent).join(',')"
        )
        assert names.split(",")[:6] == sorted(names.split(",")[:6], reverse=True)
        # every bin label lies inside its chart
        outside = browser.js(
            "Array.from(document.querySelectorAll('.card svg')).flatMap(svg => {"
            " const box = svg.getBoundingClientRect();"
            " return Array.from(svg.querySelectorAll('text')).filter(t => {"
            "  const r = t.getBoundingClientRect();"
            "  return r.left < box.left - 1 || r.bottom > box.bottom + 1; })"
            " .map(t => t.textContent);"
            "}).length"
        )
        assert outside == 0
        browser.screenshot(tmp_path / "report.png")
        assert (tmp_path / "report.png").stat().st_size > 10_000
        assert browser.errors == []
    finally:
        browser.close()
