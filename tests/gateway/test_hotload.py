"""Hot-loading under traffic, failed loads, canary and shadow routing, overload and timeouts."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import polars as pl
import pytest

from gateway.runtimes import compile_model
from gateway.settings import GatewaySettings
from registry import Canary, Registry, Route, Shadow
from tests.gateway.conftest import fit_iris, iris, serve

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip
ADMIN = {"Authorization": "Bearer secret"}


def set_route(registry: Registry, name: str, **fields: Any) -> Route:
    return registry.update_route(
        name, lambda r: msgspec.structs.replace(r, **fields), kind="route", actor="test"
    )


def serving(client: httpx.Client, name: str) -> dict[str, Any]:
    models = client.get("/admin/models", headers=ADMIN).json()["models"]
    return next(m for m in models if m["name"] == name)


def loaded_versions(client: httpx.Client, name: str) -> set[int]:
    return {v["version"] for v in serving(client, name)["loaded"]}


class Traffic:
    """Client threads sending requests back to back, recording (sent, received, status,
    version) per request."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.stop = threading.Event()
        self.records: list[tuple[float, float, int, int | None]] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                r = client.post("/v2/models/iris/infer", json=BODY)
                received = time.monotonic()
                version = int(r.headers["x-model-version"]) if r.status_code == 200 else None
                self.records.append((sent, received, r.status_code, version))

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.mark.slow
def test_twenty_swaps_under_traffic_lose_no_request(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    X, _ = iris()
    for C in (1.0, 0.5, 0.1):
        registry.register("iris", fit_iris(C), reference=X[:20])
    settings = GatewaySettings(poll_interval_s=0.02, log_flush_interval_s=0.5, admin_token="secret")
    with serve(registry, tmp_path / "logs", settings) as served, served.client() as admin:
        # timeline: (set at, confirmed serving at, versions routed)
        timeline: list[tuple[float, float, set[int]]] = [(0.0, 0.0, {1})]
        with Traffic(served.url) as traffic:
            for i in range(20):
                champion = [2, 3, 1][i % 3]
                canary = Canary(version=[3, 1, 2][i % 3], weight=30.0) if i % 4 == 3 else None
                set_at = time.monotonic()
                set_route(registry, "iris", champion=champion, canary=canary)
                routed = {champion} | ({canary.version} if canary else set())
                served.wait_for(
                    lambda r=routed, c=champion: (
                        serving(admin, "iris")["serving_champion"] == c
                        and loaded_versions(admin, "iris") == r
                    )
                )
                timeline.append((set_at, time.monotonic(), routed))
            served.wait_for(lambda: len(traffic.records) > 100)
    statuses = {status for _, _, status, _ in traffic.records}
    assert statuses == {200}, f"failed requests during swaps: {statuses}"
    _check_routed(traffic.records, timeline)
    assert {v for *_, v in traffic.records} >= {1, 2, 3}


def _check_routed(
    records: list[tuple[float, float, int, int | None]],
    timeline: list[tuple[float, float, set[int]]],
) -> None:
    """Each response's version was routed at some moment while the request was in flight:
    route ``i`` holds from when it was written until route ``i + 1`` was confirmed served."""
    for sent, received, _status, version in records:
        allowed: set[int] = set()
        for i, (set_at, _confirmed, routed) in enumerate(timeline):
            until = timeline[i + 1][1] if i + 1 < len(timeline) else float("inf")
            if set_at <= received and until >= sent:
                allowed |= routed
        assert version in allowed, (sent, received, version, allowed)


def test_a_corrupt_version_never_takes_traffic(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    X, _ = iris()
    registry.register("iris", fit_iris(1.0), reference=X[:20])
    bad = registry.register("iris", fit_iris(0.5), reference=X[:20])
    artifact = tmp_path / "registry" / "models" / "iris" / "versions" / "2" / bad.artifact
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    settings = GatewaySettings(poll_interval_s=0.02, admin_token="secret")
    with serve(registry, tmp_path / "logs", settings) as served, served.client() as c:
        set_route(registry, "iris", champion=2)
        served.wait_for(lambda: "2" in serving(c, "iris")["failures"])
        state = serving(c, "iris")
        assert "ArtifactCorrupt" in state["failures"]["2"]
        assert state["serving_champion"] == 1 and state["ready"] is False
        r = c.post("/v2/models/iris/infer", json=BODY)
        assert r.status_code == 200 and r.headers["x-model-version"] == "1"
        assert c.get("/v2/health/ready").status_code == 503  # a routed version is not loaded
        metrics = c.get("/metrics").text
        assert 'mlgate_model_loads_total{model="iris",outcome="failed"} 1.0' in metrics
        assert 'mlgate_model_failed_versions{model="iris"} 1.0' in metrics
        assert c.put("/admin/models/iris/route", json={"champion": 1}).status_code == 401
        bad = c.put("/admin/models/iris/route", json={"champion": "x"}, headers=ADMIN)
        assert bad.status_code == 400
        rolled = c.put("/admin/models/iris/route", json={"champion": 1}, headers=ADMIN)
        assert rolled.status_code == 200 and rolled.json()["champion"] == 1
        # rolled back through the admin API: ready again, the failure cleared
        served.wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
        assert serving(c, "iris")["failures"] == {}


def test_canary_sticks_by_key_and_shadow_is_logged_not_served(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    X, _ = iris()
    for C in (1.0, 0.5, 0.1):
        registry.register("iris", fit_iris(C), reference=X[:20])
    set_route(registry, "iris", champion=1, canary=Canary(2, 50.0), shadows=[Shadow(3, 100.0)])
    settings = GatewaySettings(poll_interval_s=0.02, log_flush_interval_s=0.1, admin_token="secret")
    with serve(registry, tmp_path / "logs", settings) as served, served.client() as c:
        seen: dict[str, set[tuple[str, str]]] = {}
        ids = []
        for i in range(40):
            key = f"user-{i % 8}"
            r = c.post("/v2/models/iris/infer", json=BODY, headers={"X-Routing-Key": key})
            assert r.status_code == 200
            seen.setdefault(key, set()).add((r.headers["x-model-version"], r.headers["x-route"]))
            ids.append(r.headers["x-request-id"])
        assert all(len(v) == 1 for v in seen.values())  # a key stays on one side
        answered = {next(iter(v)) for v in seen.values()}
        assert answered == {("1", "champion"), ("2", "canary")}
        explicit = c.post("/v2/models/iris/versions/3/infer", json=BODY)
        assert explicit.headers["x-route"] == "explicit"

        def logged() -> pl.DataFrame:
            files = list((tmp_path / "logs" / "predictions").glob("model=iris/date=*/*.parquet"))
            if not files:
                return pl.DataFrame(schema={"request_id": pl.String, "route": pl.String})
            return pl.concat([pl.read_parquet(f) for f in files])

        served.wait_for(
            lambda: (
                logged().filter(pl.col("route") == "shadow").height == 40
                and logged().filter(pl.col("route") == "explicit").height == 1
            )
        )
        frame = logged()
        shadows = frame.filter(pl.col("route") == "shadow")
        assert set(shadows["version"].to_list()) == {3}
        assert sorted(shadows["request_id"].to_list()) == sorted(ids)
        # a model registered while serving appears on reload (or at the next list poll)
        registry.register("late", fit_iris(0.1))
        assert c.get("/v2/models/late").status_code == 404
        assert c.post("/admin/reload", headers=ADMIN).status_code == 202
        served.wait_for(lambda: c.get("/v2/models/late/ready").status_code == 200)


class GatedRuntime:
    """The real scikit-learn runtime, with calls the test can hold to fill the queue."""

    gate = threading.Event()
    entered = threading.Event()

    def __init__(self, estimator: Any) -> None:
        self.inner = compile_model(estimator, backend="sklearn")
        self.backend = self.inner.backend
        self.n_features = self.inner.n_features
        self.task = self.inner.task
        self.classes = self.inner.classes
        self.allows_nan = self.inner.allows_nan

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        if X.shape[0] == 1 and X[0, 0] == 42.0:
            GatedRuntime.entered.set()
            GatedRuntime.gate.wait(10)
        return self.inner.predict(X)


def test_full_queue_is_503_with_retry_after_and_slow_is_504(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    settings = GatewaySettings(
        poll_interval_s=0.05,
        max_queue_rows=2,
        request_timeout_s=0.5,
        retry_after_s=3,
        admin_token="secret",
    )
    GatedRuntime.gate.clear()
    GatedRuntime.entered.clear()
    loader = lambda reg, mv: GatedRuntime(reg.load_model(mv))  # noqa: E731

    def body(value: float, rows: int = 1) -> dict[str, Any]:
        data = [[value, 3.5, 1.4, 0.2]] * rows
        return {
            "inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP32", "data": data}]
        }

    with serve(registry, tmp_path / "logs", settings, load_runtime=loader) as served:
        results: dict[str, httpx.Response] = {}

        def send(name: str, payload: dict[str, Any]) -> None:
            with served.client() as c:
                results[name] = c.post("/v2/models/iris/infer", json=payload)

        held = threading.Thread(target=send, args=("held", body(42.0)))
        held.start()
        assert GatedRuntime.entered.wait(10)  # the runtime is busy with "held"
        queued = threading.Thread(target=send, args=("queued", body(5.0)))
        queued.start()
        served.wait_for(lambda: served.loaded("iris", 1)["queued_rows"] == 1)
        with served.client() as c:
            refused = c.post("/v2/models/iris/infer", json=body(5.0, rows=2))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert "max_queue_rows=2" in refused.json()["error"]
        held.join(10)
        queued.join(10)
        GatedRuntime.gate.set()
        assert results["held"].status_code == 504
        assert "request_timeout_s=0.5" in results["held"].json()["error"]
        assert results["queued"].status_code == 504
        with served.client() as c:  # the gateway recovers once the runtime is free
            assert c.post("/v2/models/iris/infer", json=body(5.0)).status_code == 200
