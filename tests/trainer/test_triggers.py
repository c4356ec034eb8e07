"""Alerts to runs: dedupe by alert id, cooldown, absorption, take-over of a dead run's lease."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from registry import Event
from tests.trainer.conftest import MODEL, World, drifted_traffic
from trainer import TrainerService, TrainerSettings, history
from trainer.claims import Lease, ModelState, StateStore
from trainer.records import Trigger
from trainer.triggers import Decision, plan

NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC).timestamp()


def _alert(aid: str, *, at: float = NOW) -> Event:
    ts = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return Event(ts=ts, model=MODEL, kind="model.drift.detected", detail={"alert_id": aid})


def _plan(state: ModelState, events: list[Event], now: float = NOW, **kw: object):
    settings = TrainerSettings.from_mapping({"cooldown_s": 100, "lease_s": 60, **kw})
    ids = iter(f"run{i}" for i in range(100))
    decision = Decision()
    new = plan(state, events, now=now, settings=settings, owner="me",
               new_run_id=lambda: next(ids), decision=decision)  # fmt: skip
    return new, decision


def test_one_alert_one_run_and_a_repeat_is_ignored() -> None:
    events = [_alert("a1"), _alert("a1")]
    state, decision = _plan(ModelState(), events)
    assert decision.start is not None and decision.start.trigger.alert_id == "a1"
    assert state.cursor == 2 and state.handled == ["a1"]
    again, decision = _plan(state, events)  # nothing new after the cursor
    assert decision.start is None and again == state


def test_alerts_during_a_run_and_in_the_cooldown_are_absorbed() -> None:
    state, decision = _plan(ModelState(), [_alert("a1"), _alert("a2")])
    assert decision.start is not None and decision.start.trigger.alert_id == "a1"
    assert decision.absorbed == [("a2", "run run0 is in progress")]
    finished = ModelState(cursor=2, handled=["a1", "a2"], last_finished_at=NOW)
    _state, decision = _plan(finished, [_alert("a1"), _alert("a2"), _alert("a3")], NOW + 50)
    assert decision.start is None and "cooldown" in decision.absorbed[0][1]
    _state, decision = _plan(finished, [_alert("a1"), _alert("a2"), _alert("a4")], NOW + 150)
    assert decision.start is not None and decision.start.trigger.alert_id == "a4"


def test_an_old_alert_is_not_acted_on() -> None:
    _state, decision = _plan(ModelState(), [_alert("old", at=NOW - 90_000)])
    assert decision.start is None and "older than" in decision.absorbed[0][1]


def test_an_expired_lease_is_taken_over_once_then_given_up() -> None:
    trigger = Trigger(kind="alert", alert_id="a1")
    dead = ModelState(lease=Lease("r1", "other", NOW - 1, trigger, attempt=1))
    state, decision = _plan(dead, [])
    assert decision.abandoned is not None and decision.start is not None
    assert decision.start.attempt == 2 and decision.start.trigger == trigger
    assert state.lease == decision.start
    dead_again = ModelState(lease=Lease("r2", "other", NOW - 1, trigger, attempt=2))
    state, decision = _plan(dead_again, [])
    assert decision.start is None and state.lease is None and state.last_finished_at == NOW


def test_schedule_starts_a_run_each_interval() -> None:
    state, decision = _plan(ModelState(), [], schedule_interval_s=600)
    assert decision.start is None and state.last_started_at == NOW
    state, decision = _plan(state, [], NOW + 601, schedule_interval_s=600)
    assert decision.start is not None and decision.start.trigger.kind == "schedule"


def test_two_trainers_on_one_registry_make_one_run_per_alert(world: World) -> None:
    drifted_traffic(world)
    world.registry.record_event(MODEL, "model.drift.detected", version=1,
                                detail={"alert_id": "alert-1"}, actor="monitor")  # fmt: skip
    services = [TrainerService(world.ctx()) for _ in range(2)]
    for i, s in enumerate(services):
        s.ctx.owner = f"trainer-{i}"
    barrier = threading.Barrier(2)

    def poll(service: TrainerService) -> None:
        barrier.wait()
        service.tick()

    threads = [threading.Thread(target=poll, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    runs = history(world.registry, MODEL)
    assert len(runs) == 1 and runs[0].trigger.alert_id == "alert-1"
    assert sum(len(s.runs) for s in services) == 1
    assert runs[0].status == "registered", runs[0].reason
    # a second poll by either finds the alert handled
    assert services[0].tick() == [] and services[1].tick() == []
    state = StateStore(world.registry).read(MODEL)
    assert state.lease is None and state.handled == ["alert-1"]


def test_a_young_alert_waits_for_start_delay_and_keeps_its_place() -> None:
    events = [_alert("a1", at=NOW - 5)]
    state, decision = _plan(ModelState(), events, start_delay_s=10)
    assert decision.start is None and state.cursor == 0 and state.handled == []
    state, decision = _plan(state, events, NOW + 6, start_delay_s=10)
    assert decision.start is not None and state.cursor == 1 and state.handled == ["a1"]


def test_the_alerted_window_start_is_carried_into_the_trigger() -> None:
    window = {"start": "2026-12-03T06:59:00Z"}
    event = Event(ts="2026-12-03T07:00:00Z", model=MODEL, kind="model.performance.degraded",
                  detail={"alert_id": "w", "window": window})  # fmt: skip
    _state, decision = _plan(ModelState(), [event])
    assert decision.start is not None
    assert decision.start.trigger.since == "2026-12-03T06:59:00Z"
    assert decision.start.trigger.event == "model.performance.degraded"
