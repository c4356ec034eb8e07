"""Registry events of kinds ``rollout.*`` and ``trainer.*`` forwarded to the webhooks.

The trainer and the rollout controller write their events to a model's registry trail
(``Registry.record_event``); the monitor, which owns the webhooks and their outbox, reads each
trail from a cursor kept in its DuckDB file and queues every new forwarded event as a signed
alert. The cursor and the queued messages are written in one transaction, and a message's
identity is the event's place in the trail, so each event goes out once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor.config import is_forwarded

if TYPE_CHECKING:
    from collections.abc import Iterable

    from monitor.alerts.outbox import EventRecorder, Outbox
    from monitor.store import MonitorStore


def forwarded_data(model: str, index: int, event: Any) -> dict[str, Any]:
    """The ``data`` of a forwarded registry event: who, what, and the event's own detail."""
    detail = dict(event.detail or {})
    route = detail.get("route")
    return {
        "model": model,
        "version": event.version,
        "route": route if isinstance(route, str) else None,
        "event": {
            "kind": event.kind,
            "ts": event.ts,
            "index": index,
            "generation": event.generation,
            "actor": event.actor,
        },
        "detail": detail,
    }


def forward_events(
    registry: EventRecorder, store: MonitorStore, outbox: Outbox, models: Iterable[str]
) -> list[str]:
    """Queue the new ``rollout.*`` / ``trainer.*`` events of ``models``; returns their kinds."""
    out: list[str] = []
    for model in sorted(models):
        trail = registry.events(model)
        start = store.event_cursor(model)
        if len(trail) < start:
            start = 0  # the trail was replaced: re-read it; message ids dedupe what was sent
        if len(trail) == start:
            continue
        with store.transaction():
            for index in range(start, len(trail)):
                event = trail[index]
                if not is_forwarded(event.kind):
                    continue
                key = ["registry", model, index, event.kind, event.ts]
                data = forwarded_data(model, index, event)
                outbox.enqueue(event.kind, data, key=key, audit=False, cooldown=False)
                out.append(event.kind)
            store.set_event_cursor(model, len(trail))
    return out
