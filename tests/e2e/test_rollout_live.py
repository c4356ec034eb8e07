"""Rollouts against a running gateway (granian on a loopback socket, real registry and logs).

- A shadow that sleeps 50 ms per batch adds nothing measurable to the primary's latency and
  never appears in a response; its answers reach the prediction log with the primary's ids.
- ``mlgate rollout rollback`` under load: no failed request, and every request answered
  after route.json changed + 2 s is served by the champion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from gateway.loading import load_runtime
from gateway.rollout_status import rollout_stats
from gateway.settings import GatewaySettings
from mlgate.app import create_gateway_front
from registry import Registry, rollout
from registry.gateways import gateway_states
from tests.helpers import GranianServer, wait_for

pytestmark = pytest.mark.slow

MLGATE = str(Path(sys.executable).with_name("mlgate"))
SHADOW_SLEEP_S = 0.05


class SleepyRuntime:
    """A real runtime that takes 50 ms more per batch: a slow shadow model."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.n_features = inner.n_features
        self.task = inner.task
        self.classes = inner.classes
        self.allows_nan = inner.allows_nan
        self.rows = 0

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(SHADOW_SLEEP_S)  # the model's own cost, not a wait for a condition
        self.rows += X.shape[0]
        out: dict[str, np.ndarray] = self.inner.predict(X)
        return out


def _iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), data.target_names[data.target]


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    X, y = _iris()
    registry = Registry(str(tmp_path / "registry"))
    registry.register("iris", LogisticRegression(C=1.0, max_iter=500).fit(X, y))
    registry.register("iris", LogisticRegression(C=0.01, max_iter=500).fit(X, y))
    return registry


@contextmanager
def _gateway(
    reg: Registry, logs: Path, loader: Callable[..., Any], **settings: Any
) -> Iterator[tuple[str, Any]]:
    """A gateway app on a loopback port: its base URL and its ``Gateway``."""
    options = {"poll_interval_s": 1.0, "log_flush_interval_s": 0.2, "inference_threads": 2}
    front = create_gateway_front(
        GatewaySettings(**{**options, **settings}),
        logs_url=str(logs),
        registry=reg,
        load_runtime=loader,
    )
    with GranianServer(front) as server:
        with httpx.Client(base_url=server.url) as c:
            wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
        yield server.url, front.gateway


def _ready_for(url: str, versions: set[int]) -> Callable[[], bool]:
    def check() -> bool:
        with httpx.Client(base_url=url) as c:
            r = c.get(f"/v2/models/iris/versions/{max(versions)}/ready")
            return r.status_code == 200 and c.get("/v2/health/ready").status_code == 200

    return check


def _body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }


def _timed_requests(client: httpx.Client, n: int, X: np.ndarray) -> tuple[list[float], set[str]]:
    latencies, versions = [], set()
    for i in range(n):
        rid = uuid.uuid4().hex
        start = time.perf_counter()
        r = client.post(
            "/v2/models/iris/infer",
            json={**_body(X[i % len(X)][None, :]), "id": rid},
            headers={"X-Routing-Key": rid},
        )
        latencies.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
        assert r.headers["X-Route"] == "champion"
        assert r.json()["model_version"] == "1"
        versions.add(r.headers["X-Model-Version"])
    return latencies, versions


def test_slow_shadow_adds_no_latency_and_never_answers(reg: Registry, tmp_path: Path) -> None:
    sleepy: list[SleepyRuntime] = []

    def loader(registry: Registry, mv: Any) -> Any:
        runtime = load_runtime(registry, mv, backend="sklearn")
        if mv.version == 2:
            sleepy.append(SleepyRuntime(runtime))
            return sleepy[-1]
        return runtime

    X, _ = _iris()
    logs = tmp_path / "logs"
    with (
        _gateway(reg, logs, loader) as (url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        _timed_requests(client, 30, X)  # warm the connection and the code paths
        base, _ = _timed_requests(client, 200, X)
        rollout.set_shadow(reg, "iris", 2, percent=100)
        wait_for(_ready_for(url, {1, 2}))
        _timed_requests(client, 30, X)  # the same warm-up after the swap
        shadowed, versions = _timed_requests(client, 200, X)
        assert versions == {"1"}
        wait_for(lambda: sleepy[-1].rows >= 230)  # every copy answered, off the request path
    p99_base, p99_shadow = np.percentile(base, 99), np.percentile(shadowed, 99)
    p50_base, p50_shadow = np.percentile(base, 50), np.percentile(shadowed, 50)
    print(
        f"primary latency without/with a 50 ms shadow: p50 {p50_base * 1e3:.2f}/"
        f"{p50_shadow * 1e3:.2f} ms, p99 {p99_base * 1e3:.2f}/{p99_shadow * 1e3:.2f} ms"
    )
    # on the request path the shadow would add >= 50 ms to every request
    assert p50_shadow < p50_base + SHADOW_SLEEP_S / 5, (p50_base, p50_shadow)
    assert p99_shadow < p99_base + SHADOW_SLEEP_S / 2, (p99_base, p99_shadow)
    # the shadow's answers are logged under the primary's request ids and can be compared
    stats = rollout_stats(str(logs), "iris", route=reg.route("iris"))
    by_route = {(s.route, s.version): s for s in stats.routes}
    assert by_route[("champion", 1)].requests == 460
    shadow = by_route[("shadow", 2)]
    assert shadow.requests > 0 and shadow.compared == shadow.rows
    assert shadow.agreement is not None and 0.0 <= shadow.agreement <= 1.0
    assert shadow.p50_ms >= SHADOW_SLEEP_S * 1000


def test_rollback_under_load_fails_nothing_and_is_on_champion_within_2s(
    reg: Registry, tmp_path: Path
) -> None:
    def loader(registry: Registry, mv: Any) -> Any:
        return load_runtime(registry, mv, backend="sklearn")

    X, _ = _iris()
    rollout.start_rollout(reg, "iris", 2, weight=50)
    results: list[tuple[float, int, str]] = []  # (sent at, status, route)
    stop = threading.Event()

    def load(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                rows = X[rng.integers(0, len(X), size=2)]
                sent = time.time()  # wall clock: compared with the route's updated_at
                try:
                    r = c.post(
                        "/v2/models/iris/infer",
                        json=_body(rows),
                        headers={"X-Routing-Key": uuid.uuid4().hex},
                    )
                    results.append((sent, r.status_code, r.headers.get("X-Route", "")))
                except httpx.HTTPError as exc:
                    results.append((sent, 0, repr(exc)))

    with _gateway(reg, tmp_path / "logs", loader) as (url, _):
        wait_for(_ready_for(url, {1, 2}))
        clients = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for t in clients:
            t.start()
        try:
            wait_for(lambda: sum(r[2] == "canary" for r in results) >= 20)
            done = subprocess.run(
                [MLGATE, "rollout", "rollback", "iris", "--registry", reg.url],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "COLUMNS": "200"},
            )
            assert done.returncode == 0, done.stderr
            route = reg.route("iris")
            assert route.canary is None and route.updated_at is not None
            rolled_back_at = datetime.fromisoformat(route.updated_at).timestamp()
            wait_for(lambda: results[-1][0] > rolled_back_at + 2.5)
        finally:
            stop.set()
            for t in clients:
                t.join(30)
    failed = [r for r in results if r[1] != 200]
    assert failed == [], failed[:5]
    last_canary = max(r[0] for r in results if r[2] == "canary")
    print(
        f"rollback: {len(results)} requests, 0 failed, last canary answer sent "
        f"{last_canary - rolled_back_at:+.3f} s after route.json changed"
    )
    late_canary = [r for r in results if r[2] == "canary" and r[0] > rolled_back_at + 2.0]
    assert late_canary == []
    after = [r for r in results if r[0] > rolled_back_at + 2.0]
    assert len(after) > 20 and {r[2] for r in after} == {"champion"}


def test_a_version_that_cannot_load_is_withdrawn_and_never_answers(
    reg: Registry, tmp_path: Path
) -> None:
    def loader(registry: Registry, mv: Any) -> Any:
        if mv.version == 2:
            raise RuntimeError("numba: cannot compile this estimator")
        return load_runtime(registry, mv, backend="sklearn")

    X, _ = _iris()
    with _gateway(reg, tmp_path / "logs", loader) as (url, gateway):
        worker = gateway.worker_id
        wait_for(lambda: [g.gateway_id for g in gateway_states(reg, "iris")] == [worker])
        done = subprocess.run(
            [MLGATE, "rollout", "start", "iris", "2", "--weight", "100", "--registry", reg.url],
            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip
        with httpx.Client(base_url=url, timeout=30) as client:
            latencies, versions = _timed_requests(client, 20, X)
        # the gateway applies the withdrawal within its poll interval, then reports it
        latest = reg.route("iris").generation
        wait_for(lambda: [g.generation for g in gateway_states(reg, "iris")] == [latest])
        status = subprocess.run(
            [MLGATE, "rollout", "status", "iris", "--format", "json", "--registry", reg.url,
             "--logs", str(tmp_path / "logs")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1, done.stdout
    message = " ".join(done.stderr.split())
    assert f"version 2 failed to load on gateway {worker}" in message
    assert "cannot compile this estimator" in message and "withdrawn" in message
    assert reg.route("iris").canary is None
    assert versions == {"1"}
    report = json.loads(status.stdout)
    # the gateway serves the generation after the withdrawal, and status says why it happened
    assert [(g["gateway_id"], g["generation"]) for g in report["gateways"]] == [
        (worker, reg.route("iris").generation)
    ]
    assert "cannot compile this estimator" in report["events"][-1]["detail"]["reason"]


def test_admin_api_changes_apply_on_the_gateway_within_2s(reg: Registry, tmp_path: Path) -> None:
    def loader(registry: Registry, mv: Any) -> Any:
        return load_runtime(registry, mv, backend="sklearn")

    X, _ = _iris()
    auth = {"Authorization": "Bearer e2e-token"}

    def routes_seen(client: httpx.Client, n: int = 20) -> set[str]:
        seen = set()
        for i in range(n):
            r = client.post(
                "/v2/models/iris/infer",
                json=_body(X[i][None, :]),
                headers={"X-Routing-Key": f"key-{i}"},
            )
            assert r.status_code == 200, r.text
            seen.add(f"{r.headers['X-Route']}:{r.headers['X-Model-Version']}")
        return seen

    def within_2s(client: httpx.Client, expected: set[str]) -> float:
        start = time.monotonic()
        wait_for(lambda: routes_seen(client) == expected, timeout_s=2.0)
        return time.monotonic() - start

    with (
        _gateway(reg, tmp_path / "logs", loader, admin_token="e2e-token") as (url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert client.post(
            "/admin/models/iris/rollout/start", json={"version": 2, "weight": 100}
        ).status_code == 401  # fmt: skip
        r = client.post(
            "/admin/models/iris/rollout/start", json={"version": 2, "weight": 100}, headers=auth
        )
        assert r.status_code == 200, r.text
        to_canary = within_2s(client, {"canary:2"})
        r = client.post("/admin/models/iris/rollout/rollback", json={}, headers=auth)
        assert r.status_code == 200, r.text
        to_champion = within_2s(client, {"champion:1"})

        def status() -> dict[str, Any]:
            answer: dict[str, Any] = client.get(
                "/admin/models/iris/rollout/status", headers=auth
            ).json()
            return answer

        def canary_requests() -> int:
            routes = status()["stats"]["routes"]
            return sum(r["requests"] for r in routes if r["route"] == "canary")

        # the log writer flushes every 0.2 s: status sees the canary's answers soon after
        wait_for(lambda: canary_requests() >= 20, timeout_s=10)
        assert status()["route"]["generation"] == reg.route("iris").generation
    print(f"admin API: canary at 100% served after {to_canary:.2f} s, "
          f"rollback back on champion after {to_champion:.2f} s")  # fmt: skip
