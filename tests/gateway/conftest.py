"""A real gateway on a loopback socket (granian's embedded server on uvloop, in a thread), a
real local registry and real Parquet log files."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from gateway.settings import GatewaySettings
from mlgate.app import create_gateway_front
from registry import Registry
from tests.helpers import GranianServer, wait_for


def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), data.target_names[data.target]


@functools.lru_cache(maxsize=8)
def fit_iris(C: float = 1.0) -> LogisticRegression:
    X, y = iris()
    return LogisticRegression(C=C, max_iter=500).fit(X, y)


@functools.lru_cache(maxsize=1)
def fit_diabetes() -> LinearRegression:
    data = load_diabetes()
    return LinearRegression().fit(data.data.astype(np.float32), data.target)


class Served:
    """A running gateway: base URL, the front, its registry and log directory."""

    def __init__(self, url: str, front: Any, registry: Registry, logs: Path) -> None:
        self.url = url
        self.front = front
        self.registry = registry
        self.logs = logs
        self.gateway = front.gateway

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def loaded(self, model: str, version: int, token: str = "secret") -> dict[str, Any]:
        """``/admin/models``' entry for a loaded version (backend, queued rows…); the server
        needs ``admin_token=token``."""
        with self.client() as c:
            r = c.get("/admin/models", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        state = next(m for m in r.json()["models"] if m["name"] == model)
        return next(v for v in state["loaded"] if v["version"] == version)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
        wait_for(condition, timeout_s)


@contextmanager
def serve(
    registry: Registry,
    logs: Path,
    settings: GatewaySettings | None = None,
    *,
    load_runtime: Callable[..., Any] | None = None,
    wait_ready: bool = True,
) -> Iterator[Served]:
    """Run the gateway's front under granian (RSGI, uvloop) on a free loopback port until
    exit: the front ``mlgate serve`` runs in each worker process."""
    settings = settings or GatewaySettings(poll_interval_s=0.05, log_flush_interval_s=0.2)
    front = create_gateway_front(
        settings,
        logs_url=str(logs),
        registry=registry,
        load_runtime=load_runtime,
    )
    with GranianServer(front) as server:
        served = Served(server.url, front, registry, logs)
        if wait_ready:
            with served.client() as client:
                ready = lambda: client.get("/v2/health/ready").status_code == 200  # noqa: E731
                served.wait_for(ready, timeout_s=90)  # cold numba compiles on a busy machine
        yield served


@pytest.fixture
def registry(local_registry_url: str) -> Registry:
    reg = Registry(local_registry_url)
    X, _ = iris()
    reg.register("iris", fit_iris(), reference=X[:50])
    return reg


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def served(registry: Registry, logs_dir: Path) -> Iterator[Served]:
    with serve(registry, logs_dir) as s:
        yield s


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server per test module: ``iris`` (classifier, string labels) and ``diabetes``
    (regressor), admin token ``secret``."""
    root = tmp_path_factory.mktemp("gateway")
    reg = Registry("file://" + str(root / "registry"))
    X, _ = iris()
    reg.register("iris", fit_iris(), reference=X[:50])
    reg.register("diabetes", fit_diabetes())
    settings = GatewaySettings(poll_interval_s=0.05, log_flush_interval_s=0.2, admin_token="secret")
    with serve(reg, root / "logs", settings) as s:
        yield s
