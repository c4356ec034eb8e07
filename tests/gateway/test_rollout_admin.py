"""Rollout admin API over a real loopback socket (granian): auth, actions, 4xx, status."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from gateway.http.admin_rollout import rollout_router
from registry import Registry
from registry.model import Canary
from tests.helpers import GranianServer, fitted_churn

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("admin-template")
    reg = Registry(str(root / "registry"))
    for seed in range(3):
        reg.register("churn", fitted_churn(seed))
    return root


def _serve(
    reg: Registry, logs: Path, token: str | None, on_change: Callable[[str], None] | None = None
) -> GranianServer:
    router = rollout_router(registry=reg, logs=str(logs), admin_token=token, on_change=on_change)
    return GranianServer(Litestar(route_handlers=[router]), interface="asgi")


@pytest.fixture
def reg(tmp_path: Path, template: Path) -> Registry:
    shutil.copytree(template / "registry", tmp_path / "registry")
    return Registry(str(tmp_path / "registry"))


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def client(reg: Registry, tmp_path: Path, changes: list[str]) -> Iterator[httpx.Client]:
    with (
        _serve(reg, tmp_path / "logs", TOKEN, changes.append) as server,
        httpx.Client(
            base_url=f"{server.url}/admin/models",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        ) as c,
    ):
        yield c


def test_actions_change_the_route(client: httpx.Client, reg: Registry, changes: list[str]) -> None:
    r = client.post("/churn/rollout/start", json={"version": 2, "weight": 20})
    assert r.status_code == 200, r.text
    assert r.json()["route"]["canary"] == {"version": 2, "weight": 20.0}
    assert client.post("/churn/rollout/weight", json={"weight": 40}).status_code == 200
    assert client.post("/churn/rollout/shadow", json={"version": 3}).status_code == 200
    assert reg.route("churn").canary == Canary(2, 40.0)
    assert client.post("/churn/rollout/shadow-off", json={}).json()["route"]["shadows"] == []
    promoted = client.post("/churn/rollout/promote").json()["route"]
    assert (promoted["champion"], promoted["previous_champion"]) == (2, 1)
    assert client.post("/churn/rollout/rollback").json()["route"]["champion"] == 1
    status = client.get("/churn/rollout/status", params={"window_s": 60}).json()
    assert status["route"]["generation"] == reg.route("churn").generation
    assert status["stats"]["window_s"] == 60
    assert [e.actor for e in reg.events("churn")][-6:] == ["admin-api"] * 6
    assert changes == ["churn"] * 6  # the gateway's watcher is poked after each change


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/churn/rollout/start", {"version": 9}, 400, "version 9 does not exist"),
        ("/churn/rollout/start", {"version": 2, "weight": 120}, 400, "from 0 to 100"),
        ("/churn/rollout/start", {"version": "two"}, 400, "Expected `int`"),
        ("/churn/rollout/start", {"version": 2, "colour": 1}, 400, "unknown field"),
        ("/churn/rollout/weight", {"weight": 10}, 400, "no canary"),
        ("/churn/rollout/promote", {}, 400, "cannot promote"),
        ("/churn/rollout/rollback", {}, 400, "nothing to roll back"),
        ("/nope/rollout/promote", {}, 404, "model 'nope' is not registered"),
        ("/Bad!/rollout/promote", {}, 400, "Bad!"),
    ],
)
def test_bad_input_is_4xx_with_error_and_changes_nothing(
    client: httpx.Client,
    reg: Registry,
    changes: list[str],
    path: str,
    body: object,
    status: int,
    message: str,
) -> None:
    before = reg.route("churn")
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert reg.route("churn") == before
    assert changes == []


def test_invalid_json_body(client: httpx.Client) -> None:
    r = client.post("/churn/rollout/weight", content=b"{not json")
    assert r.status_code == 400 and "invalid JSON" in r.json()["error"]


def test_bearer_token_required(reg: Registry, tmp_path: Path) -> None:
    with _serve(reg, tmp_path / "logs", TOKEN) as server:
        url = f"{server.url}/admin/models/churn/rollout/start"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = httpx.post(url, json={"version": 2}, headers=headers)
            assert r.status_code == 401 and "bearer" in r.json()["error"].lower()
        assert reg.route("churn").canary is None
    with _serve(reg, tmp_path / "logs", None) as server:
        r = httpx.get(f"{server.url}/admin/models/churn/rollout/status")
        assert r.status_code == 403 and "disabled" in r.json()["error"]


def test_status_with_a_corrupt_segment_is_200_and_names_it(
    client: httpx.Client, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    day = datetime.now(UTC).date().isoformat()
    directory = tmp_path / "logs" / "predictions" / "model=churn" / f"date={day}"
    directory.mkdir(parents=True)
    (directory / "w1-000001.parquet").write_bytes(b"PAR1 truncated")
    r = client.get("/churn/rollout/status")
    assert r.status_code == 200, r.text
    bad = r.json()["stats"]["bad_segments"]
    assert [Path(b["path"]).name for b in bad] == ["w1-000001.parquet"]
    assert bad[0]["reason"].startswith("not a readable Parquet file")
