"""The durable alert outbox: every message is in DuckDB before any delivery is tried.

- **dedupe**: one message per (endpoint, fingerprint) ever; re-raising the same event is a
  no-op, so a pass replayed after a crash sends nothing twice;
- **cooldown**: the same event type for the same model, version and route is not sent to an
  endpoint again within ``cooldown_seconds`` (the message is kept as ``suppressed``);
- **retries**: a failed delivery (refused, 5xx, timeout) is retried with exponential
  backoff and jitter until ``retry_give_up_seconds`` after it was queued; messages to one
  endpoint go out in order, and a failure holds back that endpoint only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from monitor import webhooks

if TYPE_CHECKING:
    import httpx

    from monitor.clock import Clock
    from monitor.config import MonitorConfig, WebhookEndpoint
    from monitor.store import MonitorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    ok: bool
    status: int | None = None
    error: str | None = None


class AlertSender(Protocol):
    """Puts one message on the wire."""

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Delivery: ...


MESSAGE_FIELDS = ("id", "endpoint", "event_type", "status", "attempts", "last_error",
                  "created_at", "delivered_at")  # fmt: skip


def messages(store: MonitorStore, model: str | None = None) -> list[dict[str, Any]]:
    """The outbox's messages (``MESSAGE_FIELDS``), oldest first; only ``model``'s if given."""
    where, args = (" WHERE subject LIKE ?", [f"%|{model}|%"]) if model else ("", [])
    rows = store.con.execute(
        f"SELECT {', '.join(MESSAGE_FIELDS)} FROM outbox{where} ORDER BY seq", args
    ).fetchall()
    return [dict(zip(MESSAGE_FIELDS, r, strict=True)) for r in rows]


class HttpSender:
    """POSTs with httpx and a hard timeout; any 2xx is a delivery.

    httpx is imported and the client made on the first delivery: a pass that raises no alert
    never pays for them (~15 MiB).
    """

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.timeout_s)
        return self._client

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Delivery:
        import httpx

        try:
            resp = self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        if 200 <= resp.status_code < 300:
            return Delivery(ok=True, status=resp.status_code)
        return Delivery(ok=False, status=resp.status_code, error=f"HTTP {resp.status_code}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def fingerprint(event_type: str, data: dict[str, Any]) -> str:
    """Identity of an event: type, model, version, route and window."""
    key = [
        event_type,
        data.get("model"),
        data.get("version"),
        data.get("route"),
        (data.get("window") or {}).get("id"),
    ]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


class Outbox:
    """Queues alert events per endpoint and delivers them with retries."""

    def __init__(
        self,
        store: MonitorStore,
        config: MonitorConfig,
        *,
        clock: Clock,
        sender: AlertSender,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.sender = sender
        self.rng = rng or random.Random()
        self.endpoints = {e.url: e for e in config.webhooks}

    def enqueue(self, event_type: str, data: dict[str, Any]) -> list[str]:
        """Queue ``event_type`` for every endpoint that wants it; returns new message ids."""
        now = self.clock.time()
        fp = fingerprint(event_type, data)
        subject = f"{event_type}|{data.get('model')}|{data.get('version')}|{data.get('route')}"
        ids: list[str] = []
        for ep in self.config.webhooks:
            if not ep.wants(event_type):
                continue
            msg_id = "msg_" + hashlib.sha256(f"{ep.url}|{fp}".encode()).hexdigest()[:24]
            con = self.store.con
            if con.execute("SELECT 1 FROM outbox WHERE id = ?", [msg_id]).fetchone():
                continue  # dedupe: this exact event was already queued for this endpoint
            recent = con.execute(
                "SELECT 1 FROM outbox WHERE endpoint = ? AND status <> 'suppressed'"
                " AND subject = ? AND created_at > ?",
                [ep.url, subject, now - self.config.cooldown_seconds],
            ).fetchone()
            status = "suppressed" if recent else "pending"
            body = self._body(ep, event_type, data, now)
            con.execute(
                "INSERT INTO outbox SELECT ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL, NULL,"
                " coalesce(max(seq), 0) + 1 FROM outbox",
                [msg_id, ep.url, event_type, fp, subject, body.decode(), now, now, status],
            )
            if status == "pending":
                ids.append(msg_id)
        return ids

    @staticmethod
    def _body(ep: WebhookEndpoint, event_type: str, data: dict[str, Any], now: float) -> bytes:
        if ep.format == "alertmanager":
            return webhooks.alertmanager_body(event_type, data, created_at=now)
        return webhooks.standard_body(event_type, data, created_at=now)

    def backoff(self, attempts: int) -> float:
        """Delay before retry number ``attempts`` (1-based): capped doubling, equal jitter."""
        cap = min(
            self.config.retry_max_seconds, self.config.retry_base_seconds * 2 ** (attempts - 1)
        )
        return float(cap / 2 + self.rng.uniform(0, cap / 2))

    def deliver_due(self) -> dict[str, int]:
        """Try every due message once; returns counts by outcome."""
        now = self.clock.time()
        rows = self.store.con.execute(
            "SELECT id, endpoint, body, created_at, attempts FROM outbox"
            " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY seq",
            [now],
        ).fetchall()
        outcome = {"delivered": 0, "retry": 0, "failed": 0}
        blocked: set[str] = set()
        for msg_id, url, body, created_at, attempts in rows:
            if url in blocked:
                continue
            ep = self.endpoints.get(url)
            secret = ep.secret if ep else None
            raw = body.encode()
            result = self.sender.send(url, raw, webhooks.headers(secret, msg_id, int(now), raw))
            outcome[self._settle(msg_id, result, created_at, attempts, now)] += 1
            if not result.ok:
                blocked.add(url)
        return outcome

    def _settle(
        self, msg_id: str, result: Delivery, created_at: float, attempts: int, now: float
    ) -> str:
        con = self.store.con
        if result.ok:
            con.execute(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                " delivered_at = ?, last_error = NULL WHERE id = ?",
                [now, msg_id],
            )
            return "delivered"
        attempts += 1
        if now - created_at >= self.config.retry_give_up_seconds:
            con.execute(
                "UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
                [attempts, result.error, msg_id],
            )
            log.warning("alert %s given up after %d attempts: %s", msg_id, attempts, result.error)
            return "failed"
        con.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            [attempts, now + self.backoff(attempts), result.error, msg_id],
        )
        return "retry"

    def pending(self) -> int:
        row = self.store.con.execute(
            "SELECT count(*) FROM outbox WHERE status='pending'"
        ).fetchone()
        return int(row[0]) if row else 0

    def messages(self) -> list[dict[str, Any]]:
        return messages(self.store)
