"""Fixtures: one real installation per session (see ``install.py``), copies of it for tests
that act, and the dashboard served by uvicorn on a loopback socket."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard import DashboardSettings, create_app
from registry import Registry
from tests.dashboard.install import Install, build
from tests.helpers import UvicornServer
from tests.monitor.receiver import Receiver

ADMIN = "admin-secret-token"


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def install(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Install:
    home = tmp_path_factory.mktemp("dashboard-home")
    # port 9 (discard) on loopback refuses: an endpoint that is down
    return build(home, webhook_ok=receiver.url, webhook_down="http://127.0.0.1:9/hook")


@pytest.fixture
def fresh(install: Install, tmp_path: Path) -> Install:
    """A copy of the installation that a test may change."""
    home = tmp_path / "home"
    shutil.copytree(install.home, home)
    return Install(
        home=home,
        registry=Registry("file://" + str(home / "registry")),
        now_us=install.now_us,
        champion_rows=install.champion_rows,
        canary_rows=install.canary_rows,
        canary_errors=install.canary_errors,
    )


Serve = Callable[..., Any]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(install, **settings) -> base URL`` of a dashboard on a real socket."""
    servers: list[UvicornServer] = []

    def start(inst: Install, *, base: str = "", **settings: Any) -> str:
        values = {"admin_token": ADMIN, "cache_s": 0.0, **settings}
        app = create_app(
            inst.registry,
            logs_url=str(inst.logs),
            monitor_db=str(inst.monitor_db),
            settings=DashboardSettings.from_mapping(values, env={}),
            base=base,
        )
        server = UvicornServer(app).__enter__()
        servers.append(server)
        return server.url + base

    yield start
    for s in servers:
        s.__exit__()
