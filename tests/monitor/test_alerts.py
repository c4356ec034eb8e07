"""Signed webhooks through the durable outbox, against a real receiver on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import ManualClock, MonitorConfig, MonitorConfigError, WebhookEndpoint, build_report
from monitor.alerts.outbox import HttpSender, Outbox
from monitor.alerts.webhooks import WebhookSecretError, secret_key, sign, verify
from monitor.store import MonitorStore
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier
from tests.monitor.receiver import Receiver

KEY = b"\x01\x02super-secret-key\xff"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def _event(window: int = 1, model: str = "churn") -> dict[str, Any]:
    return {
        "model": model,
        "version": 1,
        "route": "champion",
        "window": {"id": window, "seq": window, "rows": 1000},
        "share_drifted": 0.75,
        "drifted_features": ["a", "b", "c"],
    }


@pytest.fixture
def store(tmp_path: Path) -> MonitorStore:
    s = MonitorStore(tmp_path / "outbox.duckdb", threads=1)
    yield s
    s.close()


@pytest.fixture
def receiver() -> Receiver:
    r = Receiver().start()
    yield r
    r.stop()


def _outbox(store: MonitorStore, clock: ManualClock, url: str, **cfg: Any) -> Outbox:
    fmt = cfg.pop("format", "standard")
    timeout = cfg.pop("webhook_timeout_s", 2.0)
    config = MonitorConfig(
        webhooks=(WebhookEndpoint(url=url, secret=SECRET, format=fmt),),
        webhook_timeout_s=timeout,
        **cfg,
    )
    return Outbox(
        store, config, clock=clock, sender=HttpSender(timeout_s=timeout), rng=random.Random(0)
    )


def _deliver_until(
    outbox: Outbox, clock: ManualClock, done: Any, *, step_s: float = 5.0, limit_s: float = 3600.0
) -> None:
    """Step the injected clock (no sleeping) and deliver until ``done()``."""
    waited = 0.0
    while not done():
        outbox.deliver_due()
        if done():
            return
        clock.advance(step_s)
        waited += step_s
        assert waited <= limit_s, f"not done after {limit_s}s of clock: {outbox.messages()}"


def test_signature_follows_the_standard_webhooks_recipe() -> None:
    body = b'{"type":"model.drift.detected"}'
    header = sign(SECRET, "msg_1", 1_700_000_000, body)
    mac = hmac.new(KEY, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert header == "v1," + base64.b64encode(mac).decode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,bm9wZQ== " + header,
    }
    assert verify(SECRET, headers, body, now=1_700_000_010)
    assert not verify(SECRET, headers, body + b" ", now=1_700_000_010)  # tampered body
    assert not verify(SECRET, headers, body, now=1_700_001_000)  # stale timestamp
    with pytest.raises(WebhookSecretError, match="whsec_"):
        secret_key("plain-secret")


def test_receiver_down_for_minutes_loses_nothing(store: MonitorStore, clock: ManualClock) -> None:
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # down before anything is sent
    outbox = _outbox(
        store, clock, f"http://127.0.0.1:{port}/hook", retry_max_s=60.0, cooldown_s=0.0
    )
    for w in (1, 2, 3):
        outbox.enqueue("model.drift.detected", _event(w))
        clock.advance(1)
    for _ in range(40):  # ~10 minutes of clock, the receiver still down
        outbox.deliver_due()
        clock.advance(15)
    messages = outbox.messages()
    assert all(m["status"] == "pending" for m in messages)
    assert messages[0]["attempts"] >= 5 and "ConnectError" in messages[0]["last_error"]
    receiver = Receiver(port=port).start()  # back on the same port
    try:
        _deliver_until(outbox, clock, lambda: len(receiver.received) == 3)
        clock.advance(3600)
        outbox.deliver_due()
        assert len(receiver.received) == 3  # nothing twice
        windows = [json.loads(r.body)["data"]["window"]["id"] for r in receiver.received]
        assert windows == [1, 2, 3]  # in order
        for r in receiver.received:  # signed when sent (the clock moved on since)
            sent = float(r.headers["webhook-timestamp"])
            assert verify(SECRET, r.headers, r.body, now=sent + 1)
        assert {m["status"] for m in outbox.messages()} == {"delivered"}
    finally:
        receiver.stop()


def test_500_and_hanging_receivers_are_retried(
    store: MonitorStore, clock: ManualClock, receiver: Receiver
) -> None:
    outbox = _outbox(store, clock, receiver.url, webhook_timeout_s=0.3)
    outbox.enqueue("model.drift.detected", _event())
    receiver.mode = "error"
    assert outbox.deliver_due() == {"delivered": 0, "recorded": 0, "retry": 1, "failed": 0}
    assert outbox.messages()[0]["last_error"] == "HTTP 500"
    doc = build_report(store, "churn")
    assert doc["alerts"][0]["last_error"] == "HTTP 500"  # shown in the report
    receiver.mode = "hang"
    clock.advance(600)
    started = time.monotonic()
    assert outbox.deliver_due()["retry"] == 1
    assert time.monotonic() - started < 5  # the timeout cut the hanging receiver off
    assert "Timeout" in outbox.messages()[0]["last_error"]
    receiver.release.set()
    receiver.mode = "ok"
    _deliver_until(outbox, clock, lambda: len(receiver.received) == 1)
    assert outbox.messages()[0]["attempts"] == 3


def test_backoff_doubles_with_jitter_and_gives_up(store: MonitorStore, clock: ManualClock) -> None:
    outbox = _outbox(
        store,
        clock,
        "http://127.0.0.1:9/none",
        retry_base_s=2.0,
        retry_max_s=60.0,
        retry_give_up_s=600.0,
    )
    for attempt in range(1, 10):
        cap = min(60.0, 2.0 * 2 ** (attempt - 1))
        assert cap / 2 <= outbox.backoff(attempt) <= cap
    outbox.enqueue("model.drift.detected", _event())
    due = []
    while outbox.messages()[0]["status"] == "pending":
        outbox.deliver_due()
        row = store.con.execute("SELECT next_attempt_at FROM outbox").fetchone()
        due.append(row[0] - clock.time())
        clock.advance(max(row[0] - clock.time(), 0.0) + 0.001)
    assert outbox.messages()[0]["status"] == "failed"
    gaps = [d for d in due if d > 0]
    assert gaps[0] <= 2.0 and max(gaps) <= 60.0 and gaps[4] > gaps[0]


def test_dedupe_and_cooldown(store: MonitorStore, clock: ManualClock, receiver: Receiver) -> None:
    outbox = _outbox(store, clock, receiver.url, cooldown_s=600.0)
    assert len(outbox.enqueue("model.drift.detected", _event(1))) == 1
    assert outbox.enqueue("model.drift.detected", _event(1)) == []  # same event: deduped
    clock.advance(60)
    assert outbox.enqueue("model.drift.detected", _event(2)) == []  # within cooldown
    assert [m["status"] for m in outbox.messages()] == ["pending", "suppressed"]
    clock.advance(600)
    assert len(outbox.enqueue("model.drift.detected", _event(3))) == 1
    outbox.deliver_due()
    assert len(receiver.received) == 2


def test_alertmanager_format(store: MonitorStore, clock: ManualClock, receiver: Receiver) -> None:
    outbox = _outbox(store, clock, receiver.url, format="alertmanager")
    outbox.enqueue("model.drift.detected", _event(1))
    outbox.enqueue("model.drift.resolved", _event(2))
    outbox.deliver_due()
    fired, resolved = (json.loads(r.body) for r in receiver.received)
    assert fired[0]["labels"]["alertname"] == "MlgateModelDrift"
    assert fired[0]["labels"]["model"] == "churn" and "endsAt" not in fired[0]
    assert resolved[0]["labels"] == fired[0]["labels"] and "endsAt" in resolved[0]


def test_config_from_toml_and_environment() -> None:
    cfg = MonitorConfig.from_section(
        {
            "window_rows": 500,
            "psi_threshold": 0.25,
            "webhooks": [
                {
                    "url": "http://127.0.0.1:1/a",
                    "secret": SECRET,
                    "format": "alertmanager",
                    "events": ["model.drift.detected"],
                }
            ],
        },
        environ={"MLGATE_WEBHOOK_URL": "http://127.0.0.1:1/b", "MLGATE_WEBHOOK_SECRET": SECRET},
    )
    assert cfg.window_rows == 500 and cfg.psi_threshold == 0.25
    assert [w.url for w in cfg.webhooks] == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]
    assert not cfg.webhooks[0].wants("model.drift.resolved")
    with pytest.raises(MonitorConfigError, match="window_rowz: unknown setting"):
        MonitorConfig.from_section({"window_rowz": 5}, environ={})
    with pytest.raises(MonitorConfigError, match="psi_threshold: expected a number"):
        MonitorConfig.from_section({"psi_threshold": "high"}, environ={})
    with pytest.raises(MonitorConfigError, match="format must be one of"):
        MonitorConfig.from_section({"webhooks": [{"url": "http://x", "format": "xml"}]}, environ={})


def test_drift_detected_then_resolved_reaches_the_receiver(
    registry: Registry, logs: Logs, make_monitor: Any, receiver: Receiver, clock: ManualClock
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("churn", est, reference=ref)
    rng = np.random.default_rng(8)
    logs.predictions(mv, rng.normal(size=(3000, 4)) + 1.0, estimator=est)
    logs.predictions(mv, rng.normal(size=(3000, 4)), estimator=est, start_us=T0_US + 10**10)
    config = MonitorConfig(webhooks=(WebhookEndpoint(url=receiver.url, secret=SECRET),))
    m = make_monitor(config)
    result = m.run_once()
    assert result.events == ["model.drift.detected", "model.drift.resolved"]
    assert result.delivered == 2 and len(receiver.received) == 2
    detected, resolved = (json.loads(r.body) for r in receiver.received)
    for r in receiver.received:
        assert verify(SECRET, r.headers, r.body, now=clock.time())
    assert detected["type"] == "model.drift.detected" and resolved["type"] == "model.drift.resolved"
    data = detected["data"]
    assert (data["model"], data["version"], data["window"]["seq"]) == ("churn", 1, 2)
    assert data["dataset_drift"] and sorted(data["drifted_features"]) == [
        "f00",
        "f01",
        "f02",
        "f03",
    ]
    f0 = data["features"][0]
    assert {"psi", "wasserstein", "js", "ks", "ks_pvalue", "drifted"} <= set(f0)
    assert data["thresholds"]["psi"] == 0.2 and data["thresholds"]["consecutive"] == 2
    assert m.run_once().events == []  # no new windows, no new alerts
