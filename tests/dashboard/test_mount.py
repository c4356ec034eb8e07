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
        page = httpx.get(f"{server.url}/board/")  # its frame first: nothing computed yet
        assert page.status_code == 200 and "/board/static/app.js" in page.text
        main = httpx.get(f"{server.url}/board/", params={"fragment": 1})
        assert "href='/board/models/churn'" in main.text
        doc = httpx.get(f"{server.url}/board/api/models").json()
        assert [m["name"] for m in doc["models"]] == ["churn", "price"]
        assert httpx.get(f"{server.url}/board/api/models/nosuch").status_code == 404


def test_disabled(install: Install, tmp_path: Path) -> None:
    config = tmp_path / "mlgate.toml"
    config.write_text("[dashboard]\nenabled = false\n")
    app = Litestar(route_handlers=[live])
    assert mount_dashboard(app, resolve(home=str(install.home), config_path=config)) is None


def test_mlgate_serve_serves_the_dashboard_under_ui(fresh: Install) -> None:
    """A live ``mlgate serve`` (gateway role): the dashboard at /ui beside the gateway's API,
    and the gateway it runs shows as live and on the current route."""
    import os
    import subprocess
    import sys

    from tests.dashboard.conftest import ADMIN
    from tests.helpers import free_port, wait_for

    port = free_port()
    log = (fresh.home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mlgate.cli import main; main()", "serve",
         "--home", str(fresh.home), "--role", "gateway", "--port", str(port),
         "--grpc-port", "0", "--log-level", "warning"],
        env={**os.environ, "MLGATE_ADMIN_TOKEN": ADMIN},
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, "mlgate serve exited"
        try:
            return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, 240, 0.2)
        page = httpx.get(f"{url}/ui/")
        assert page.status_code == 200 and "/ui/static/app.js" in page.text
        main = httpx.get(f"{url}/ui/", params={"fragment": 1})
        assert "href='/ui/models/churn'" in main.text

        def on_route() -> bool:
            doc = httpx.get(f"{url}/ui/api/models").json()
            return doc["models"][0]["gateways"]["all_loaded"] is True

        wait_for(on_route, 60, 0.5)
        preview = httpx.post(
            f"{url}/ui/api/models/churn/actions/weight",
            json={"weight": 30},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert preview.status_code == 200 and preview.json()["confirm_required"] is True
        assert httpx.get(f"{url}/v2/models/churn").status_code == 200  # the gateway's own API
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
