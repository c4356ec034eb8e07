"""The durable alert outbox: every message is in DuckDB before any delivery is tried.

- **dedupe**: one message per (endpoint, fingerprint) ever; re-raising the same event is a
  no-op, so a pass replayed after a crash sends nothing twice;
- **cooldown**: the same event type for the same model, version and route is not sent to an
  endpoint again within ``cooldown_s`` (the message is kept as ``suppressed``);
- **retries**: a failed delivery (refused, 5xx, timeout) is retried with exponential
  backoff and jitter until ``retry_give_up_s`` after it was queued; messages to one
  endpoint go out in order, and a failure holds back that endpoint only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from monitor.alerts import webhooks
from monitor.store.rows import OutboxMessage

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


REGISTRY_DESTINATION = "registry:events.jsonl"
MONITOR_ACTOR = "monitor"


class EventRecorder(Protocol):
    """The part of ``registry.Registry`` that writes and reads a model's audit trail."""

    def record_event(
        self,
        name: str,
        kind: str,
        *,
        version: int | None = None,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Any: ...

    def events(self, name: str) -> list[Any]: ...


class RegistrySink:
    """Delivers alerts to the registry audit trail, at most once per alert id.

    The trail is read once per model per delivery round (``begin``) to learn which alert ids
    it already holds: only one monitor writes ``actor = "monitor"`` events.
    """

    def __init__(self, registry: EventRecorder) -> None:
        self.registry = registry
        self._seen: dict[str, set[str]] = {}

    def begin(self) -> None:
        self._seen.clear()

    def _recorded(self, model: str) -> set[str]:
        seen = self._seen.get(model)
        if seen is None:
            seen = {
                str(e.detail.get("alert_id"))
                for e in self.registry.events(model)
                if e.actor == MONITOR_ACTOR and isinstance(e.detail, dict)
            }
            self._seen[model] = seen
        return seen

    def send(self, alert_id: str, body: bytes) -> Delivery:
        message = json.loads(body)
        data = message["data"]
        model = str(data["model"])
        try:
            seen = self._recorded(model)
            if alert_id not in seen:
                detail = {"alert_id": alert_id}
                detail.update({k: v for k, v in data.items() if k not in ("model", "version")})
                version = data.get("version")
                self.registry.record_event(
                    model,
                    str(message["type"]),
                    version=int(version) if version is not None else None,
                    detail=detail,
                    actor=MONITOR_ACTOR,
                )
                seen.add(alert_id)
        except Exception as exc:  # noqa: BLE001 - a registry outage: retried like a webhook
            self._seen.pop(model, None)
            return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Delivery(ok=True)


MESSAGE_FIELDS = OutboxMessage._fields


def messages(store: MonitorStore, model: str | None = None) -> list[dict[str, Any]]:
    """The outbox's messages (``MESSAGE_FIELDS``), oldest first; only ``model``'s if given."""
    return [m._asdict() for m in store.outbox_messages(model)]


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


def fingerprint(event_type: str, data: dict[str, Any], key: list[Any] | None = None) -> str:
    """Identity of an event: type, model, version, route and window (or an explicit key)."""
    if key is None:
        key = [
            event_type,
            data.get("model"),
            data.get("version"),
            data.get("route"),
            (data.get("window") or {}).get("id"),
        ]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


def alert_id(fp: str) -> str:
    """The id of an alert in every destination: ``webhook-id`` and ``detail.alert_id``."""
    return "msg_" + fp[:24]


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
        recorder: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.sender = sender
        self.rng = rng or random.Random()
        self.endpoints = {e.url: e for e in config.webhooks}
        self.sink = RegistrySink(recorder) if recorder is not None else None

    def enqueue(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        key: list[Any] | None = None,
        audit: bool = True,
        cooldown: bool = True,
    ) -> list[str]:
        """Queue ``event_type`` for every endpoint that wants it; returns new message ids.

        ``audit``: also queue it for the registry audit trail (when the outbox has one);
        ``cooldown``: hold back a repeat of the same subject within ``cooldown_s``;
        ``key``: the event's identity when it is not the type, model, version, route and
        window of a monitor alert.
        """
        now = self.clock.time()
        fp = fingerprint(event_type, data, key)
        subject = f"{event_type}|{data.get('model')}|{data.get('version')}|{data.get('route')}"
        ids: list[str] = []
        destinations: list[tuple[str, WebhookEndpoint | None]] = [
            (ep.url, ep) for ep in self.config.webhooks if ep.wants(event_type)
        ]
        if audit and self.sink is not None:
            destinations.append((REGISTRY_DESTINATION, None))
        for url, ep in destinations:
            msg_id = "msg_" + hashlib.sha256(f"{url}|{fp}".encode()).hexdigest()[:24]
            if self.store.outbox_has(msg_id):
                continue  # dedupe: this exact event was already queued for this endpoint
            recent = (
                cooldown
                and ep is not None
                and self.store.outbox_sent_since(url, subject, now - self.config.cooldown_s)
            )
            status = "suppressed" if recent else "pending"
            body = self._body(ep, event_type, data, now)
            self.store.outbox_add(
                msg_id=msg_id, endpoint=url, event_type=event_type, fingerprint=fp,
                subject=subject, body=body.decode(), now=now, status=status,
                alert_id=alert_id(fp),
            )  # fmt: skip
            if status == "pending":
                ids.append(msg_id)
        return ids

    @staticmethod
    def _body(
        ep: WebhookEndpoint | None, event_type: str, data: dict[str, Any], now: float
    ) -> bytes:
        if ep is not None and ep.format == "alertmanager":
            return webhooks.alertmanager_body(event_type, data, created_at=now)
        return webhooks.standard_body(event_type, data, created_at=now)

    def backoff(self, attempts: int) -> float:
        """Delay before retry number ``attempts`` (1-based): capped doubling, equal jitter."""
        cap = min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempts - 1))
        return float(cap / 2 + self.rng.uniform(0, cap / 2))

    def deliver_due(self) -> dict[str, int]:
        """Try every due message once; returns counts by outcome.

        ``delivered`` counts webhooks, ``recorded`` alerts appended to the registry trail.
        """
        now = self.clock.time()
        due = self.store.outbox_due(now)
        outcome = {"delivered": 0, "recorded": 0, "retry": 0, "failed": 0}
        blocked: set[str] = set()
        if self.sink is not None:
            self.sink.begin()
        for msg_id, url, body, created_at, attempts, public_id in due:
            if url in blocked:
                continue
            raw = body.encode()
            if url == REGISTRY_DESTINATION:
                if self.sink is None:
                    continue  # queued by a monitor that had a registry; kept for one that has
                result = self.sink.send(public_id, raw)
            else:
                ep = self.endpoints.get(url)
                secret = ep.secret if ep else None
                hdrs = webhooks.headers(secret, public_id, int(now), raw)
                result = self.sender.send(url, raw, hdrs)
            settled = self._settle(msg_id, result, created_at, attempts, now)
            if settled == "delivered" and url == REGISTRY_DESTINATION:
                settled = "recorded"
            outcome[settled] += 1
            if not result.ok:
                blocked.add(url)
        return outcome

    def _settle(
        self, msg_id: str, result: Delivery, created_at: float, attempts: int, now: float
    ) -> str:
        if result.ok:
            self.store.outbox_delivered(msg_id, now)
            return "delivered"
        attempts += 1
        if now - created_at >= self.config.retry_give_up_s:
            self.store.outbox_failed(msg_id, attempts, result.error)
            log.warning("alert %s given up after %d attempts: %s", msg_id, attempts, result.error)
            return "failed"
        self.store.outbox_retry(msg_id, attempts, now + self.backoff(attempts), result.error)
        return "retry"

    def pending(self) -> int:
        return self.store.outbox_pending()

    def messages(self) -> list[dict[str, Any]]:
        return messages(self.store)
