"""Alerts into the registry audit trail, and rollout/trainer events out to the webhooks:
real DuckDB file, real registry directory, real webhook receiver on loopback."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import HttpSender, ManualClock, MonitorConfig, WebhookEndpoint
from monitor.alerts.outbox import REGISTRY_DESTINATION, Outbox
from monitor.alerts.webhooks import verify
from monitor.store import MonitorStore
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier
from tests.monitor.receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"registry-events-key").decode()


@pytest.fixture
def receiver() -> Receiver:
    r = Receiver().start()
    yield r
    r.stop()


def _drifting_model(registry: Registry, logs: Logs) -> Any:
    est, ref = fit_classifier(d=4)
    mv = registry.register("churn", est, reference=ref)
    rng = np.random.default_rng(8)
    logs.predictions(mv, rng.normal(size=(3000, 4)) + 1.0, estimator=est)
    logs.predictions(mv, rng.normal(size=(3000, 4)), estimator=est, start_us=T0_US + 10**10)
    return mv


def _monitor_events(registry: Registry, name: str = "churn") -> list[Any]:
    return [e for e in registry.events(name) if e.actor == "monitor"]


def test_every_alert_lands_in_the_registry_trail_with_the_webhook_id(
    registry: Registry, logs: Logs, make_monitor: Any, receiver: Receiver
) -> None:
    _drifting_model(registry, logs)
    config = MonitorConfig(webhooks=(WebhookEndpoint(url=receiver.url, secret=SECRET),))
    result = make_monitor(config).run_once()
    assert result.events == ["model.drift.detected", "model.drift.resolved"]
    assert (result.delivered, result.recorded) == (2, 2)
    trail = _monitor_events(registry)
    assert [e.kind for e in trail] == ["model.drift.detected", "model.drift.resolved"]
    sent = {json.loads(r.body)["type"]: r.headers["webhook-id"] for r in receiver.received}
    for event in trail:
        assert event.detail["alert_id"] == sent[event.kind]  # the same id on both sides
        assert event.version == 1 and event.detail["route"] == "champion"
        assert event.detail["window"]["rows"] == 1000  # window_rows
    detected = trail[0].detail
    assert detected["dataset_drift"] and detected["share_drifted"] == 1.0
    assert sorted(detected["drifted_features"]) == ["f00", "f01", "f02", "f03"]
    assert detected["features"][0]["psi"] >= 0.2


def test_a_crash_after_the_append_never_duplicates_the_event(
    registry: Registry, logs: Logs, make_monitor: Any, tmp_path: Path
) -> None:
    _drifting_model(registry, logs)
    m = make_monitor(MonitorConfig())  # no webhooks: the trail is still written
    assert m.run_once().recorded == 2
    # the state a crash between the append and the outbox update leaves behind
    m.store.con.execute(
        "UPDATE outbox SET status = 'pending', delivered_at = NULL WHERE endpoint = ?",
        [REGISTRY_DESTINATION],
    )
    m.close()
    again = make_monitor(MonitorConfig())
    assert again.deliver()["recorded"] == 2  # settled again...
    assert [e.kind for e in _monitor_events(registry)] == [  # ...but appended once
        "model.drift.detected",
        "model.drift.resolved",
    ]
    assert again.run_once().recorded == 0


class LostAckRegistry(Registry):
    """Appends for real, then fails the call (a timeout after the write reached storage)."""

    failures = 1

    def record_event(self, name: str, kind: str, **kwargs: Any) -> Any:
        event = super().record_event(name, kind, **kwargs)
        if self.failures:
            self.failures -= 1
            raise TimeoutError("the append went through but its answer was lost")
        return event


class DownRegistry(Registry):
    """A registry whose storage refuses writes until it comes back."""

    down = True

    def record_event(self, name: str, kind: str, **kwargs: Any) -> Any:
        if self.down:
            raise ConnectionError("registry storage unreachable")
        return super().record_event(name, kind, **kwargs)


def _registry_outbox(
    store: MonitorStore, clock: ManualClock, registry: Registry, url: str | None = None
) -> Outbox:
    hooks = (WebhookEndpoint(url=url, secret=SECRET),) if url else ()
    config = MonitorConfig(webhooks=hooks, cooldown_s=600.0)
    return Outbox(
        store,
        config,
        clock=clock,
        sender=HttpSender(timeout_s=2.0),
        rng=random.Random(0),
        recorder=registry,
    )


def _alert(window: int) -> dict[str, Any]:
    window_info = {"id": window, "seq": window, "rows": 1000}
    return {"model": "churn", "version": 1, "route": "champion", "window": window_info}


def test_stored_before_delivered_retried_and_deduplicated(
    local_registry_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    est, ref = fit_classifier(d=4)
    Registry(local_registry_url).register("churn", est, reference=ref)
    db = tmp_path / "monitor.duckdb"
    # 1. queued, then the process dies before any delivery: the next one delivers it
    store = MonitorStore(db, threads=1)
    _registry_outbox(store, clock, Registry(local_registry_url)).enqueue(
        "model.drift.detected", _alert(1)
    )
    store.close()
    # 2. the registry is down: retried with backoff, nothing lost
    down = DownRegistry(local_registry_url)
    store = MonitorStore(db, threads=1)
    outbox = _registry_outbox(store, clock, down)
    assert outbox.deliver_due() == {"delivered": 0, "recorded": 0, "retry": 1, "failed": 0}
    assert "ConnectionError" in (outbox.messages()[0]["last_error"] or "")
    down.down = False
    clock.advance(600)
    assert outbox.deliver_due()["recorded"] == 1
    # 3. the append works but its answer is lost: re-delivery finds the id, appends nothing
    lost = LostAckRegistry(local_registry_url)
    outbox = _registry_outbox(store, clock, lost)
    outbox.enqueue("model.drift.resolved", _alert(2))
    assert outbox.deliver_due()["retry"] == 1
    clock.advance(600)
    assert outbox.deliver_due()["recorded"] == 1
    trail = _monitor_events(Registry(local_registry_url))
    assert [e.kind for e in trail] == ["model.drift.detected", "model.drift.resolved"]
    assert [e.detail["window"]["id"] for e in trail] == [1, 2]
    assert {m["status"] for m in outbox.messages()} == {"delivered"}
    # 4. the same alert raised again is a no-op; the cooldown never holds back the trail
    outbox.enqueue("model.drift.resolved", _alert(2))
    outbox.enqueue("model.drift.resolved", _alert(3))
    outbox.deliver_due()
    assert [e.detail["window"]["id"] for e in _monitor_events(Registry(local_registry_url))] == [
        1,
        2,
        3,
    ]
    store.close()


def test_rollout_and_trainer_events_are_forwarded_once_each(
    registry: Registry, make_monitor: Any, receiver: Receiver, clock: ManualClock
) -> None:
    est, ref = fit_classifier(d=4)
    registry.register("churn", est, reference=ref)  # "register"/"promote": not forwarded
    registry.record_event(
        "churn", "trainer.run.finished", version=2, detail={"decision": "registered"},
        actor="trainer",
    )  # fmt: skip
    registry.record_event(
        "churn", "rollout.step", version=2, detail={"weight": 10, "route": "canary"},
        actor="promotion",
    )  # fmt: skip
    alertmanager = Receiver().start()
    try:
        config = MonitorConfig(
            webhooks=(
                WebhookEndpoint(url=receiver.url, secret=SECRET),
                WebhookEndpoint(url=alertmanager.url, format="alertmanager"),
            )
        )
        m = make_monitor(config)
        result = m.run_once()
        assert result.forwarded == ["trainer.run.finished", "rollout.step"]
        bodies = [json.loads(r.body) for r in receiver.received]
        assert [b["type"] for b in bodies] == ["trainer.run.finished", "rollout.step"]
        for r in receiver.received:
            assert verify(SECRET, r.headers, r.body, now=clock.time())
        step = bodies[1]["data"]
        assert (step["model"], step["version"], step["route"]) == ("churn", 2, "canary")
        assert step["detail"]["weight"] == 10 and step["event"]["actor"] == "promotion"
        assert alertmanager.received == []  # Alertmanager takes the monitor's alerts only
        assert m.run_once().forwarded == []  # nothing twice
        m.close()
        registry.record_event("churn", "rollout.promoted", version=2, actor="promotion")
        registry.record_event("churn", "rollback", version=1, actor="cli")  # not a rollout.*
        again = make_monitor(config)  # a restarted monitor resumes at its cursor
        assert again.run_once().forwarded == ["rollout.promoted"]
        assert [json.loads(r.body)["type"] for r in receiver.received] == [
            "trainer.run.finished",
            "rollout.step",
            "rollout.promoted",
        ]
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 3
        # forwarded events are not written back to the trail
        assert _monitor_events(registry) == []
    finally:
        alertmanager.stop()


def test_endpoint_event_filters_accept_patterns() -> None:
    cfg = MonitorConfig.from_section(
        {"webhooks": [{"url": "http://127.0.0.1:1/a", "events": ["rollout.*"]}]}, environ={}
    )
    hook = cfg.webhooks[0]
    assert hook.wants("rollout.step") and not hook.wants("model.drift.detected")
    with pytest.raises(ValueError, match="unknown event types"):
        WebhookEndpoint(url="http://127.0.0.1:1/a", events=("deploy.*",))
