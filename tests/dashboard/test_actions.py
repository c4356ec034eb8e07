"""The actions over HTTP: admin token enforced, a preview that changes nothing, then the
confirmed call, which ends in the same registry change and event as the CLI's."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.dashboard.conftest import ADMIN, Serve
from tests.dashboard.install import Install
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

AUTH = {"authorization": f"Bearer {ADMIN}"}


def _act(url: str, action: str, body: dict | None = None, *, model: str = "churn",
         headers: dict | None = None) -> httpx.Response:  # fmt: skip
    return httpx.post(
        f"{url}/api/models/{model}/actions/{action}",
        json=body or {},
        headers=AUTH if headers is None else headers,
        timeout=30,
    )


def _confirmed(url: str, action: str, body: dict | None = None) -> httpx.Response:
    preview = _act(url, action, body)
    assert preview.status_code == 200, preview.text
    doc = preview.json()
    assert doc["confirm_required"] is True
    return _act(url, action, {**(body or {}), "confirm": True, "generation": doc["generation"]})


def test_token_is_enforced(fresh: Install, serve: Serve) -> None:
    url = serve(fresh)
    before = fresh.registry.route("churn")
    missing = _act(url, "promote", {"confirm": True}, headers={})
    assert missing.status_code == 401 and "Authorization" in missing.json()["error"]
    wrong = _act(url, "promote", {"confirm": True}, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
    cookie_only = httpx.post(
        f"{url}/api/models/churn/actions/promote", json={"confirm": True},
        cookies={"mlgate_read": ADMIN},
    )  # fmt: skip
    assert cookie_only.status_code == 401
    assert fresh.registry.route("churn") == before
    disabled = serve(fresh, admin_token=None)
    off = _act(disabled, "promote", {"confirm": True})
    assert off.status_code == 403 and "MLGATE_ADMIN_TOKEN" in off.json()["error"]
    assert fresh.registry.route("churn") == before


def test_preview_changes_nothing_and_confirm_promotes(fresh: Install, serve: Serve) -> None:
    url = serve(fresh)
    before = fresh.registry.route("churn")
    events_before = len(fresh.registry.events("churn"))
    preview = _act(url, "promote")
    assert preview.status_code == 200
    assert "Promote canary v2" in preview.json()["summary"]
    assert fresh.registry.route("churn") == before
    assert len(fresh.registry.events("churn")) == events_before
    done = _act(url, "promote", {"confirm": True, "generation": before.generation})
    assert done.status_code == 200, done.text
    assert done.json()["route"]["champion"] == 2
    route = fresh.registry.route("churn")
    assert route.champion == 2 and route.canary is None and route.previous_champion == 1
    event = fresh.registry.events("churn")[-1]
    assert event.kind == "promote" and event.actor == "dashboard"
    assert event.detail == {"action": "promote", "version": 2, "previous_champion": 1}


def test_a_stale_confirmation_is_refused(fresh: Install, serve: Serve) -> None:
    url = serve(fresh)
    generation = _act(url, "weight", {"weight": 30}).json()["generation"]
    assert _confirmed(url, "weight", {"weight": 40}).status_code == 200  # someone else acted
    stale = _act(url, "weight", {"weight": 30, "confirm": True, "generation": generation})
    assert stale.status_code == 409 and "changed since the confirmation" in stale.json()["error"]
    assert fresh.registry.route("churn").canary.weight == 40.0  # type: ignore[union-attr]


def _cli(install: Install, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-c", "from mlgate.cli import main; main()", *args,
         "--home", str(install.home)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_each_action_writes_the_cli_event(fresh: Install, serve: Serve) -> None:
    """The dashboard and the CLI doing the same thing leave the same event (but the actor)."""
    url = serve(fresh)
    reg = fresh.registry

    def last() -> tuple[str, dict, int | None]:
        e = reg.events("churn")[-1]
        return e.kind, e.detail, e.version

    pairs = [
        (("rollout", "weight", "churn", "35"), ("weight", {"weight": 35})),
        (("rollout", "shadow", "churn", "3", "--off"), ("shadow-off", {"version": 3})),
        (("rollout", "shadow", "churn", "3", "--percent", "50"),
         ("shadow", {"version": 3, "percent": 50})),
        (("rollout", "rollback", "churn"), ("rollback", {})),
    ]  # fmt: skip
    for cli_args, (action, body) in pairs:
        _cli(fresh, *cli_args)
        by_cli = last()
        cli_route = reg.route("churn")
        # undo the CLI's change so that the dashboard makes the very same one
        if action == "rollback":
            _cli(
                fresh, "rollout", "start", "churn", "2", "--weight", "35", "--gateway-timeout", "0"
            )
        elif action == "shadow":
            _cli(fresh, "rollout", "shadow", "churn", "3", "--off")
        elif action == "shadow-off":
            _cli(fresh, "rollout", "shadow", "churn", "3")
        elif action == "weight":
            _cli(fresh, "rollout", "weight", "churn", "20")
        r = _confirmed(url, action, body)
        assert r.status_code == 200, r.text
        assert last() == by_cli, action
        assert reg.events("churn")[-1].actor == "dashboard"
        ours = reg.route("churn")
        assert (ours.champion, ours.canary, ours.shadows) == (
            cli_route.champion, cli_route.canary, cli_route.shadows,
        ), action  # fmt: skip


def test_bad_action_requests_are_4xx(fresh: Install, serve: Serve) -> None:
    url = serve(fresh)
    cases = [
        ("weight", {"weight": 150}, 400, "weight"),
        ("weight", {"weight": "lots"}, 400, "lots"),
        ("weight", {}, 400, "weight"),
        ("shadow", {"version": "x"}, 400, "version"),
        ("shadow", {}, 400, "version"),
        ("shadow", {"version": 99}, 404, "99"),
        ("explode", {}, 404, "explode"),
    ]
    for action, body, status, word in cases:
        r = _act(url, action, body)
        assert r.status_code == status, (action, body, r.text)
        assert word in r.json()["error"], (action, body)
    r = httpx.post(f"{url}/api/models/churn/actions/weight", content=b"{not json", headers=AUTH)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = httpx.post(f"{url}/api/models/churn/actions/weight", content=b"[1]", headers=AUTH)
    assert r.status_code == 400 and "object" in r.json()["error"]
    assert _act(url, "promote", model="nosuch").status_code == 404
    _confirmed(url, "promote")
    nothing = _act(url, "promote")  # no canary left to promote
    assert nothing.status_code == 409 and "no canary" in nothing.json()["error"]


def test_retrain_starts_a_trainer_run(fresh: Install, serve: Serve) -> None:
    """The action calls ``trainer.retrain``: a manual run is recorded and its events written."""
    from trainer import history

    url = serve(fresh)
    before = len(history(fresh.registry, "churn"))
    preview = _act(url, "retrain")
    assert preview.status_code == 200 and "retraining run" in preview.json()["summary"]
    assert len(history(fresh.registry, "churn")) == before  # the preview starts nothing
    r = _confirmed(url, "retrain")
    assert r.status_code == 202 and r.json()["started"] is True

    def ended() -> bool:
        runs = history(fresh.registry, "churn")
        return len(runs) > before and runs[-1].ended

    wait_for(ended, timeout_s=240, every_s=0.5)
    run = history(fresh.registry, "churn")[-1]
    assert run.trigger.kind == "manual"
    kinds = [e.kind for e in fresh.registry.events("churn")]
    assert "trainer.run.started" in kinds[-10:]
    doc = httpx.get(f"{url}/api/models/churn").json()
    assert doc["runs"][0]["run_id"] == run.run_id


def test_retrain_without_a_trainer_is_501(fresh: Install) -> None:
    from dashboard import DashboardSettings, create_app
    from tests.helpers import UvicornServer

    app = create_app(
        fresh.registry,
        logs_url=str(fresh.logs),
        monitor_db=str(fresh.monitor_db),
        settings=DashboardSettings.from_mapping({"admin_token": ADMIN}, env={}),
        retrain=None,
    )
    # create_app falls back to trainer.retrain; a composition without a trainer passes none
    from dashboard.actions import ActionError, plan

    try:
        plan(fresh.registry, "churn", "retrain", {}, retrain=None)
    except ActionError as exc:
        assert exc.status == 501 and "trainer" in str(exc)
    else:
        raise AssertionError("retrain without a trainer must be refused")
    with UvicornServer(app) as server:
        assert _act(server.url, "retrain").status_code == 200  # the fallback: trainer.retrain
