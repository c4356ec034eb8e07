"""From the audit trail to runs: which alert starts a run, which are absorbed, and when.

:func:`plan` is the pure decision a trainer takes for one model on each poll, applied
inside the compare-and-swap of the model's state (:class:`trainer.claims.StateStore`), so it
is recomputed on the latest state whenever another trainer wrote first:

- the events after the state's cursor are considered once, in order;
- an alert (an event kind of ``trigger_events``) is identified by ``detail.alert_id`` and
  handled once: it starts a run unless a run is in progress, the model is in its cooldown,
  or the alert is older than ``max_alert_age_s`` -- then it is absorbed; an alert younger
  than ``start_delay_s`` is left for a later poll (the cursor stops in front of it);
- a lease past its expiry (its trainer died) is taken over as the next attempt of the same
  trigger, up to ``max_attempts``, then given up;
- with ``schedule_interval_s``, a run starts when that long has passed since the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from trainer.claims import Lease, ModelState, handled
from trainer.records import Trigger, parse_time

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from registry import Event
    from trainer.settings import TrainerSettings


@dataclass
class Decision:
    """What one poll decided for a model."""

    start: Lease | None = None  # the run this trainer starts now (new, scheduled or taken over)
    abandoned: Lease | None = None  # an expired lease: taken over or given up
    absorbed: list[tuple[str, str]] = field(default_factory=list)  # (alert id, why)


def alert_id(event: Event) -> str:
    """The alert's id: ``detail.alert_id`` as the monitor writes it (else its kind and time).

    >>> from registry import Event
    >>> alert_id(Event(ts="t", model="m", kind="model.drift.detected", detail={"alert_id": "a7"}))
    'a7'
    """
    value = event.detail.get("alert_id") or event.detail.get("id")
    return str(value) if value else f"{event.kind}@{event.ts}"


def plan(
    state: ModelState,
    events: Sequence[Event],
    *,
    now: float,
    settings: TrainerSettings,
    owner: str,
    new_run_id: Callable[[], str],
    decision: Decision,
) -> ModelState:
    """The model's next state; what was decided is written into ``decision`` (cleared first)."""
    decision.start, decision.abandoned, decision.absorbed = None, None, []
    st = msgspec.structs.replace(state, cursor=len(events))
    lease = st.lease
    if lease is not None and lease.expires_at <= now:
        decision.abandoned = lease
        if lease.attempt < settings.max_attempts:
            taken = Lease(
                run_id=new_run_id(),
                owner=owner,
                expires_at=now + settings.lease_s,
                trigger=lease.trigger,
                attempt=lease.attempt + 1,
            )
            st = msgspec.structs.replace(st, lease=taken, last_started_at=now)
            decision.start = taken
        else:
            st = msgspec.structs.replace(st, lease=None, last_finished_at=now)
    first = min(state.cursor, len(events))
    for index in range(first, len(events)):
        event = events[index]
        if event.kind not in settings.trigger_events:
            continue
        aid = alert_id(event)
        if aid in st.handled:
            continue
        if st.lease is None and _age_s(event, now) < settings.start_delay_s:
            st = msgspec.structs.replace(st, cursor=index)  # seen again on the next poll
            break
        st = handled(st, aid)
        why = _absorbed_because(st, event, now=now, settings=settings)
        if why is not None:
            decision.absorbed.append((aid, why))
            st = msgspec.structs.replace(st, absorbed=st.absorbed + 1)
            continue
        window = event.detail.get("window")
        since = window.get("start") if isinstance(window, dict) else None
        trigger = Trigger(
            kind="alert",
            alert_id=aid,
            event=event.kind,
            at=event.ts,
            since=str(since) if since else None,
        )
        started = Lease(
            run_id=new_run_id(), owner=owner, expires_at=now + settings.lease_s, trigger=trigger
        )
        st = msgspec.structs.replace(st, lease=started, last_started_at=now)
        decision.start = started
    if settings.schedule_interval_s > 0 and st.lease is None:
        if st.last_started_at is None:
            st = msgspec.structs.replace(st, last_started_at=now)  # the first one, one interval on
        elif now - st.last_started_at >= settings.schedule_interval_s:
            trigger = Trigger(kind="schedule", at=_iso(now))
            started = Lease(
                run_id=new_run_id(), owner=owner, expires_at=now + settings.lease_s, trigger=trigger
            )
            st = msgspec.structs.replace(st, lease=started, last_started_at=now)
            decision.start = started
    return st


def _absorbed_because(
    st: ModelState, event: Event, *, now: float, settings: TrainerSettings
) -> str | None:
    if _age_s(event, now) > settings.max_alert_age_s:
        return f"older than max_alert_age_s = {settings.max_alert_age_s:g} s"
    if st.lease is not None:
        return f"run {st.lease.run_id} is in progress"
    if st.last_finished_at is not None and now - st.last_finished_at < settings.cooldown_s:
        return (
            f"cooldown: the last run ended {now - st.last_finished_at:.0f} s ago "
            f"(cooldown_s = {settings.cooldown_s:g})"
        )
    return None


def _age_s(event: Event, now: float) -> float:
    try:
        return now - parse_time(event.ts).timestamp()
    except ValueError:
        return 0.0


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
