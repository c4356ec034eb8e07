"""The dashboard registered inside another Litestar app (how ``mlgate serve`` serves it next
to the gateway): its pages under the mount path, the host app's routes untouched."""

from __future__ import annotations

from pathlib import Path

import httpx
from litestar import Litestar, get

from mlgate.settings import resolve
from mlgate.ui import mount_dashboard
from tests.dashboard.install import Install
from tests.helpers import UvicornServer


@get("/v2/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


def test_mounted_under_mount_path_beside_the_host_routes(install: Install, tmp_path: Path) -> None:
    config = tmp_path / "mlgate.toml"
    config.write_text('[dashboard]\nmount_path = "/board"\n')
    where = resolve(home=str(install.home), config_path=config)
    app = Litestar(route_handlers=[live])
    assert mount_dashboard(app, where) == "/board"
    with UvicornServer(app) as server:
        assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
        page = httpx.get(f"{server.url}/board/")
        assert page.status_code == 200 and "href='/board/models/churn'" in page.text
        doc = httpx.get(f"{server.url}/board/api/models").json()
        assert [m["name"] for m in doc["models"]] == ["churn", "price"]
        assert httpx.get(f"{server.url}/board/api/models/nosuch").status_code == 404


def test_disabled(install: Install, tmp_path: Path) -> None:
    config = tmp_path / "mlgate.toml"
    config.write_text("[dashboard]\nenabled = false\n")
    app = Litestar(route_handlers=[live])
    assert mount_dashboard(app, resolve(home=str(install.home), config_path=config)) is None
