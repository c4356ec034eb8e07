"""The Grafana dashboard and the Prometheus alert rules ask only for metrics (and labels) that a
live gateway and a live monitor really export: both are run here and scraped."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import GatewaySettings
from mlgate.leader import LeaderLoop
from monitor import Monitor, MonitorConfig
from monitor.config import WebhookEndpoint
from registry import Lease, Registry, start_rollout
from tests.deploy.manifests import DEPLOY
from tests.gateway.conftest import fit_iris, iris, serve
from tests.helpers import wait_for
from tests.monitor.conftest import Logs, fit_classifier
from tests.monitor.receiver import Receiver
from trainer.promotion.metrics import RolloutMetrics

pytestmark = pytest.mark.slow  # a live gateway and a monitor pass (numba compiles)

# labels Prometheus adds at scrape time, and the histogram bucket label
SCRAPE_LABELS = {"instance", "job", "le"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported(text: str) -> dict[str, set[str]]:
    """``{sample name: label names}`` of a Prometheus text page, empty families included."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            out.setdefault(family.name + suffix, set())
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    root = tmp_path_factory.mktemp("observability")
    # a live gateway with a champion and a canary, after real traffic
    reg = Registry(str(root / "registry"))
    X, _ = iris()
    reg.register("iris", fit_iris(), reference=X[:50])
    v2 = reg.register("iris", fit_iris(C=0.5), reference=X[:50]).version
    start_rollout(reg, "iris", v2, weight=50)
    with serve(reg, root / "logs", GatewaySettings(poll_interval_s=0.05)) as served:
        with served.client() as client:
            body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                "data": X[:2].ravel().tolist()}]}  # fmt: skip
            for i in range(20):
                r = client.post("/v2/models/iris/infer", json=body,
                                headers={"X-Routing-Key": str(i)})  # fmt: skip
                assert r.status_code == 200, r.text
            gateway_text = httpx.get(f"{served.url}/metrics").text
    # a live monitor after one pass over real segments, with its lease loop's metrics
    mreg = Registry(str(root / "mregistry"))
    est, ref = fit_classifier(d=4)
    mv = mreg.register("churn", est, reference=ref)
    rng, logs = np.random.default_rng(0), Logs(root / "mlogs")
    logs.predictions(mv, rng.normal(size=(2000, 4)), estimator=est)
    for day in range(1, 4):  # drifted traffic: the monitor alerts, the receiver gets it
        x = rng.normal(size=(2000, 4))
        x += 2.0  # every feature: dataset drift
        logs.predictions(mv, x, estimator=est, start_us=1_764_000_000_000_000 + day * 10**11)
    receiver = Receiver().start()
    config = MonitorConfig(webhooks=(WebhookEndpoint(url=receiver.url),))
    mon = Monitor(mreg, str(root / "mlogs"), db=root / "m.duckdb", config=config)
    try:
        loop = LeaderLoop(Lease(mreg, "monitor"), mon.run_once, interval_s=60, role="monitor")
        stop = threading.Event()
        runner = threading.Thread(target=loop.run, args=(stop,))
        runner.start()
        try:
            wait_for(lambda: loop.passes >= 1, 120)
        finally:
            stop.set()
            runner.join(60)
        assert receiver.received
        collector = type("C", (), {"collect": lambda self: loop.collect()})()
        mon.collector_registry.register(collector)
        monitor_text = generate_latest(mon.collector_registry).decode()
    finally:
        mon.close()
        receiver.stop()
    # the trainer's rollout figures, as its process exports them while it drives a rollout
    rollouts = RolloutMetrics()
    rollouts.update("iris", "canary", 10.0, [])
    trainer_text = generate_latest(rollouts.registry).decode()
    yield {**exported(gateway_text), **exported(monitor_text), **exported(trainer_text)}


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and every alert rule."""
    dashboard = json.loads((DEPLOY / "grafana/mlgate-dashboard.json").read_text())
    found = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yaml").read_text())
    found += [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]
    return found


def labels_used(expr: str) -> set[str]:
    used = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        used.update(x.strip() for x in group.split(",") if x.strip())
    for selector in re.findall(r"\{([^}]*)\}", expr):
        used.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
    return used


def test_every_query_names_an_exported_metric_and_its_labels(
    metrics: dict[str, set[str]],
) -> None:
    assert len(queries()) >= 25
    for where, expr in queries():
        names = set(re.findall(r"\bmlgate_[a-z0-9_]+", expr))
        assert names, f"{where}: no mlgate metric in {expr!r}"
        unknown = names - set(metrics)
        assert not unknown, f"{where}: {sorted(unknown)} are not exported"
        known_labels = set().union(*(metrics[n] for n in names)) | SCRAPE_LABELS
        assert labels_used(expr) <= known_labels, f"{where}: labels {labels_used(expr)}"
        assert expr.count("(") == expr.count(")"), f"{where}: unbalanced parentheses"


def test_the_dashboard_covers_what_an_operator_watches(metrics: dict[str, set[str]]) -> None:
    exprs = " ".join(expr for _, expr in queries())
    for needed in (
        "mlgate_requests_total", "mlgate_request_latency_seconds_bucket",
        "mlgate_batch_rows_bucket", "mlgate_queue_rows", 'route="canary"',
        "mlgate_monitor_share_drifted",
        "mlgate_monitor_webhook_deliveries_total", "mlgate_monitor_last_pass_timestamp_seconds",
        "mlgate_registry_reachable",
    ):  # fmt: skip
        assert needed in exprs, needed
    # the request metric carries the labels the panels split by
    assert {"model", "version", "route", "status"} <= metrics["mlgate_requests_total"]
    assert {"model", "stage"} <= metrics["mlgate_request_latency_seconds_bucket"]


def test_alert_rules_are_well_formed() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yaml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    names = [r["alert"] for r in alerts]
    assert len(names) == len(set(names))
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert {"MlgateHighErrorRate", "MlgateHighP99Latency", "MlgateNoTraffic",
            "MlgateMonitorLag", "MlgateRegistryUnreachable"} <= set(names)  # fmt: skip


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(Path(DEPLOY / "grafana/mlgate-dashboard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
