"""The whole topology as separate processes (``make topology``): an S3 server, two gateways, a
monitor and the trainer, configured by MLGATE_REGISTRY / MLGATE_LOGS alone.

Checks: both gateways serve every route change within 2 s; both gateways' prediction segments
reach the monitor, each counted once; the store can go away under load and come back with no
failed request, the gateways ready throughout and reporting it on /metrics; the monitor's
alert starts exactly one trainer run; clean shutdown."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest

from registry import Registry, promote, start_rollout
from tests.e2e.processes import scrape, total, try_scrape, wait_until
from tests.e2e.topology import Topology
from tests.gateway.conftest import fit_iris, iris

# separate processes starting and compiling on a shared machine: more than the 300 s default
pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.timeout(900)]

PROPAGATION_LIMIT_S = 2.0


class Traffic:
    """Threads sending OIP requests to each gateway; every answer is recorded."""

    def __init__(self, gateways: list[str], X: np.ndarray, threads_per_gateway: int = 1) -> None:
        self.gateways = gateways
        self.X = X
        self.answers: list[tuple[str, int, str, str]] = []  # gateway, status, version, route
        self.errors: list[str] = []
        self._run = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(url, seed), daemon=True)
            for url in gateways
            for seed in range(threads_per_gateway)
        ]

    def _loop(self, url: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                if not self._run.wait(0.05):
                    continue
                row = self.X[rng.integers(len(self.X))]
                body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                                    "data": row.tolist()}]}  # fmt: skip
                try:
                    key = str(rng.integers(10**9))
                    r = client.post("/v2/models/iris/infer", json=body,
                                    headers={"X-Routing-Key": key})  # fmt: skip
                except httpx.TransportError as exc:
                    self.errors.append(f"{url}: {type(exc).__name__}: {exc}")
                    continue
                self.answers.append(
                    (url, r.status_code, r.headers.get("x-model-version", ""),
                     r.headers.get("x-route", ""))
                )  # fmt: skip

    def start(self) -> None:
        for t in self._threads:
            t.start()
        self._run.set()

    def pause(self) -> None:
        self._run.clear()
        time.sleep(0.2)  # let the requests in flight finish (each is answered in ms)

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def count(self, url: str, **match: str) -> int:
        n = 0
        for gateway, status, version, route in list(self.answers):
            fields = {"status": str(status), "version": version, "route": route}
            if gateway == url and all(fields[k] == v for k, v in match.items()):
                n += 1
        return n

    def wait_each(self, more: int, what: str, **match: str) -> None:
        start = {url: self.count(url, **match) for url in self.gateways}
        for url in self.gateways:
            wait_until(lambda u=url: self.count(u, **match) >= start[u] + more, 60,  # type: ignore[misc]
                       f"{url}: {more} more answers {what}")  # fmt: skip


def _segments(topology: Topology) -> list[str]:
    """Prediction segment keys in the log store."""
    client = boto3.client("s3", endpoint_url=topology.s3.url, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=topology.bucket, Prefix="logs/predictions/"
    )
    return [o["Key"] for page in pages for o in page.get("Contents", [])
            if o["Key"].endswith(".parquet")]  # fmt: skip


def _gateway_metric(topology: Topology, name: str, **labels: str) -> list[float]:
    return [total(scrape(f"{url}/metrics"), name, **labels) for url in topology.gateways]


def test_two_gateways_a_monitor_and_an_s3_outage(tmp_path: Path) -> None:
    topology = Topology(tmp_path, gateways=2, monitor=True)
    topology.start()
    traffic: Traffic | None = None
    try:
        reg = Registry(topology.registry_url)
        X, _ = iris()
        reg.register("iris", fit_iris(), reference=X)
        topology.start_gateways()
        topology.start_companions()
        topology.wait_ready()
        traffic = Traffic(topology.gateways, X)
        traffic.start()
        traffic.wait_each(50, "from the champion", status="200", version="1")

        # a canary, then its promotion: every gateway applies each change within 2 s
        v2 = reg.register("iris", fit_iris(C=0.05), reference=X).version
        route = start_rollout(reg, "iris", v2, weight=50)
        delays = topology.propagation_s(reg, "iris", route)
        assert max(delays) <= PROPAGATION_LIMIT_S, (delays, topology.load_seconds("iris"))
        traffic.wait_each(20, "from the canary", status="200", version=str(v2), route="canary")
        route = promote(reg, "iris")
        delays += topology.propagation_s(reg, "iris", route)
        assert max(delays) <= PROPAGATION_LIMIT_S, (delays, topology.load_seconds("iris"))
        traffic.wait_each(20, "from the new champion", status="200", version=str(v2),
                          route="champion")  # fmt: skip

        # both gateways' prediction logs reach the monitor, each segment counted once
        traffic.pause()
        answered = len(traffic.answers)
        wait_until(
            lambda: sum(_gateway_metric(topology, "mlgate_log_rows_written_total",
                                        kind="predictions")) == answered,
            30,
            "every answered request is in a written segment",
        )  # fmt: skip
        segments = _segments(topology)
        workers = {key.rsplit("/", 1)[1].rsplit("-", 1)[0] for key in segments}
        assert len(workers) == 2, workers  # one writer per gateway process
        monitor_url = topology.monitor_metrics or ""
        wait_until(
            lambda: total(try_scrape(monitor_url) or {}, "mlgate_monitor_segments_total",
                          kind="predictions", outcome="ok") == len(segments),
            60,
            f"the monitor reads the {len(segments)} segments",
        )  # fmt: skip
        samples = scrape(monitor_url)
        assert total(samples, "mlgate_monitor_rows_total", model="iris") == answered
        assert samples["mlgate_monitor_lease_held"] == 1.0

        # the store goes away under load: serving goes on, the gateways stay ready and say so
        traffic.resume()
        topology.s3.stop()
        for url in topology.gateways:
            wait_until(lambda u=url: scrape(f"{u}/metrics")["mlgate_registry_reachable"] == 0.0,  # type: ignore[misc]
                       60, f"{url} reports the registry unreachable")  # fmt: skip
            assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        traffic.wait_each(50, "during the outage", status="200")
        assert all(n >= 1 for n in _gateway_metric(topology, "mlgate_registry_errors_total"))
        outage_logged = [
            name for name, proc in topology.processes.items()
            if name.startswith("gateway")
            and re.search(r"watcher: (registry poll|route_stamp\('iris'\)) failed", proc.output())
        ]  # fmt: skip
        assert len(outage_logged) == 2, outage_logged

        # ... and comes back: the gateways pick up a change made after it
        topology.s3.start()
        for url in topology.gateways:
            wait_until(lambda u=url: scrape(f"{u}/metrics")["mlgate_registry_reachable"] == 1.0,  # type: ignore[misc]
                       60, f"{url} reaches the registry again")  # fmt: skip
        v3 = reg.register("iris", fit_iris(C=1.0), reference=X).version
        route = start_rollout(reg, "iris", v3, weight=30)
        delays = topology.propagation_s(reg, "iris", route)
        assert max(delays) <= PROPAGATION_LIMIT_S, (delays, topology.load_seconds("iris"))
        traffic.wait_each(10, "from the post-outage canary", status="200", version=str(v3))
        traffic.stop()
        statuses = Counter(status for _, status, _, _ in traffic.answers)
        assert set(statuses) == {200} and not traffic.errors, (statuses, traffic.errors[:5])
    finally:
        if traffic is not None:
            traffic.stop()
        codes = topology.stop()
    assert all(code in (0, -15) for code in codes.values()), codes


def test_the_monitors_alert_starts_one_trainer_run(tmp_path: Path) -> None:
    """Drifted traffic through both gateways -> the monitor's alert in the registry's audit
    trail -> exactly one run of the trainer process, triggered by that alert."""
    from trainer import history

    topology = Topology(tmp_path, gateways=2, monitor=True, trainer=True)
    topology.start()
    try:
        reg = Registry(topology.registry_url)
        X, _ = iris()
        reg.register("iris", fit_iris(), reference=X)
        topology.start_gateways()
        topology.start_companions()
        topology.wait_ready()
        rng = np.random.default_rng(1)
        drifted = (X + 3.0 * X.std(axis=0)).astype(np.float32)  # every feature moved by 3 sd
        for url in topology.gateways:
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(40):  # 400 rows per gateway, 10 per request
                    rows = drifted[rng.integers(len(drifted), size=10)]
                    body = {"inputs": [{"name": "input-0", "shape": [10, 4], "datatype": "FP32",
                                        "data": rows.ravel().tolist()}]}  # fmt: skip
                    r = client.post("/v2/models/iris/infer", json=body)
                    assert r.status_code == 200, r.text

        def alerts() -> set[str]:
            return {
                str(e.detail.get("alert_id"))
                for e in reg.events("iris")
                if e.kind == "model.drift.detected"
            }

        wait_until(lambda: bool(alerts()), 180, "the monitor's drift alert in the audit trail")
        wait_until(
            lambda: any(run.trigger.kind == "alert" for run in history(reg, "iris")),
            180,
            "a trainer run started by the alert",
        )
        runs = [run for run in history(reg, "iris") if run.trigger.kind == "alert"]
        assert {run.trigger.alert_id for run in runs} <= alerts()
        per_alert = Counter(run.trigger.alert_id for run in runs if run.attempt == 1)
        assert max(per_alert.values()) == 1, per_alert  # one run per alert, never two
        assert "trainer" in topology.processes and topology.processes["trainer"].alive()
    finally:
        codes = topology.stop()
    assert all(code in (0, -15) for code in codes.values()), codes
