"""The rollout state machine on a real registry and real Parquet log segments, on a stepped
clock: shadow -> canary steps -> champion, rollback on a failed check, abort when traffic
stays too thin, and one transition when two controllers tick the same rollout."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from registry import Registry, rollout
from trainer.promotion import RolloutController, RolloutPlan, RolloutRefused
from trainer.promotion.controller import EVENTS

from .traffic import Model, Traffic

PLAN = RolloutPlan(
    shadow_s=10.0, shadow_requests=100_000, steps=[10.0, 50.0, 100.0], step_interval_s=10.0,
    step_min_requests=20, max_wait_s=60.0, analysis_interval_s=0.0, label_maturity_s=5.0,
    min_labelled=50,
)  # fmt: skip


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2)).astype(np.float32)
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


@pytest.fixture
def reg(tmp_path: Path, fitted: LogisticRegression) -> Registry:
    registry = Registry(str(tmp_path / "registry"))
    registry.register("iris", fitted)
    registry.register("iris", fitted)
    return registry


@pytest.fixture
def clock() -> Clock:
    # a little in the past: segments written now must not look older than the rollout
    return Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=200))


def _drive(
    ctl: RolloutController,
    reg: Registry,
    traffic: Traffic,
    clock: Clock,
    behaviour: dict[int, Model],
    *,
    rate: float,
    limit_s: float = 400.0,
    every_s: float = 5.0,
    until: Callable[[], bool] | None = None,
) -> float:
    """Traffic and ticks in ``every_s`` slices until the rollout ends; seconds simulated."""
    spent = 0.0
    while reg.route("iris").rollout and spent < limit_s:
        traffic.run(reg.route("iris"), clock.now, every_s, rate, behaviour)
        clock.now += timedelta(seconds=every_s)
        spent += every_s
        ctl.tick()
        if until is not None and until():
            break
    return spent


def _rollout_events(reg: Registry) -> list[str]:
    return [e.kind for e in reg.events("iris") if e.kind.startswith("rollout.")]


def test_a_better_candidate_goes_shadow_canary_champion(
    reg: Registry, tmp_path: Path, clock: Clock
) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    route = ctl.begin("iris", 2)
    assert route.canary is None and [s.version for s in route.shadows] == [2]
    assert route.rollout is not None and route.rollout["phase"] == "shadow"
    traffic = Traffic(tmp_path / "logs", "iris")
    spent = _drive(ctl, reg, traffic, clock, {1: Model(accuracy=0.7), 2: Model(accuracy=0.95)},
                   rate=30)  # fmt: skip
    route = reg.route("iris")
    assert route.champion == 2 and route.previous_champion == 1
    assert route.canary is None and route.shadows == [] and route.rollout is None
    assert _rollout_events(reg) == [
        "rollout.started", "rollout.canary", "rollout.step", "rollout.step", "rollout.promoted",
    ]  # fmt: skip
    assert spent <= 180  # a clearly better model at 30 req/s: champion within three minutes
    promoted = reg.events("iris")[-1]
    checks = {c["check"]: c for c in promoted.detail["checks"]}
    assert set(checks) == {"error_rate", "latency", "agreement", "labelled"}
    labelled = checks["labelled"]
    assert labelled["outcome"] == "pass" and labelled["effect"] > 0.1
    assert labelled["p_value"] < 1e-6 and labelled["n"] >= PLAN.min_labelled
    for figure in ("n", "statistic", "interval", "effect", "threshold"):
        assert checks["error_rate"][figure] is not None
        assert checks["latency"][figure] is not None
    assert checks["agreement"]["outcome"] == "skipped"  # labels decide


def test_the_default_plan_promotes_a_better_candidate_within_minutes(
    reg: Registry, tmp_path: Path, clock: Clock
) -> None:
    # the documented sizing: at a few tens of requests per second (here 30, labels a second
    # later), a clearly better candidate is champion within about three minutes
    ctl = RolloutController(reg, str(tmp_path / "logs"), RolloutPlan(), clock=clock)
    ctl.begin("iris", 2)
    traffic = Traffic(tmp_path / "logs", "iris")
    behaviour = {1: Model(accuracy=0.8), 2: Model(accuracy=0.95)}
    spent = _drive(ctl, reg, traffic, clock, behaviour, rate=30, every_s=2.5)
    assert reg.route("iris").champion == 2, _rollout_events(reg)
    assert spent <= 180, spent


def test_an_erroring_canary_is_rolled_back_with_the_failing_figure(
    reg: Registry, tmp_path: Path, clock: Clock
) -> None:
    plan = PLAN.replace(shadow_percent=0.0, shadow_s=0.0, shadow_requests=0)
    ctl = RolloutController(reg, str(tmp_path / "logs"), plan, clock=clock)
    route = ctl.begin("iris", 2)
    assert route.canary is not None and route.canary.weight == 10.0 and route.shadows == []
    traffic = Traffic(tmp_path / "logs", "iris", labels=False)
    _drive(ctl, reg, traffic, clock, {1: Model(), 2: Model(error_rate=0.3)}, rate=30)
    route = reg.route("iris")
    assert route.champion == 1 and route.canary is None and route.rollout is None
    last = reg.events("iris")[-1]
    assert last.kind == "rollout.rolled_back"
    failed = {c["check"]: c for c in last.detail["failed"]}
    assert set(failed) == {"error_rate"}
    assert failed["error_rate"]["interval"][0] > plan.max_error_rate_increase
    assert "error rate" in last.detail["reason"]


def test_a_slow_canary_is_rolled_back(reg: Registry, tmp_path: Path, clock: Clock) -> None:
    plan = PLAN.replace(shadow_percent=0.0, shadow_s=0.0, shadow_requests=0)
    ctl = RolloutController(reg, str(tmp_path / "logs"), plan, clock=clock)
    ctl.begin("iris", 2)
    traffic = Traffic(tmp_path / "logs", "iris", labels=False)
    _drive(ctl, reg, traffic, clock, {1: Model(), 2: Model(latency_ms=40.0)}, rate=30)
    last = reg.events("iris")[-1]
    assert last.kind == "rollout.rolled_back"
    latency = next(c for c in last.detail["failed"] if c["check"] == "latency")
    assert latency["effect"] > 20  # the p99 ratio
    assert latency["statistic"] > 0 and latency["threshold"] < 40


def test_a_worse_candidate_on_labels_is_rolled_back_in_shadow(
    reg: Registry, tmp_path: Path, clock: Clock
) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    ctl.begin("iris", 2)
    traffic = Traffic(tmp_path / "logs", "iris")
    _drive(ctl, reg, traffic, clock, {1: Model(accuracy=0.95), 2: Model(accuracy=0.6)}, rate=30)
    last = reg.events("iris")[-1]
    assert last.kind == "rollout.rolled_back" and last.detail["phase"] == "shadow"
    labelled = next(c for c in last.detail["failed"] if c["check"] == "labelled")
    assert labelled["effect"] < -0.2 and labelled["p_value"] < 0.01
    assert reg.route("iris").shadows == []


def test_too_little_traffic_waits_then_aborts(reg: Registry, tmp_path: Path, clock: Clock) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    ctl.begin("iris", 2)
    traffic = Traffic(tmp_path / "logs", "iris", labels=False)
    behaviour = {1: Model(), 2: Model()}
    seen: list[str] = []

    def note() -> bool:
        decision = ctl.last.get("iris")
        if decision is not None:
            seen.append(decision.action)
        return False

    _drive(ctl, reg, traffic, clock, behaviour, rate=0.4, until=note)
    assert "advance" not in seen and "promote" not in seen
    assert seen[:-1] == ["wait"] * (len(seen) - 1) and seen[-1] == "abort"
    route = reg.route("iris")
    assert route.champion == 1 and route.shadows == [] and route.rollout is None
    last = reg.events("iris")[-1]
    assert last.kind == "rollout.aborted" and last.detail["elapsed_s"] >= PLAN.max_wait_s
    assert last.detail["inconclusive"]
    assert _rollout_events(reg) == ["rollout.started", "rollout.aborted"]


def test_two_controllers_take_each_step_once(reg: Registry, tmp_path: Path, clock: Clock) -> None:
    logs = str(tmp_path / "logs")
    first = RolloutController(reg, logs, PLAN, clock=clock)
    # the second has other defaults: the plan stored in the route is the one that counts
    second = RolloutController(Registry(reg.url), logs, RolloutPlan(), clock=clock)
    first.begin("iris", 2)
    traffic = Traffic(tmp_path / "logs", "iris")
    behaviour = {1: Model(accuracy=0.7), 2: Model(accuracy=0.95)}
    both_acted = 0
    for _ in range(80):
        if not reg.route("iris").rollout:
            break
        traffic.run(reg.route("iris"), clock.now, 5.0, 30, behaviour)
        clock.now += timedelta(seconds=5)
        # both analyse the same route at once; the compare-and-swap lets one of them act
        with ThreadPoolExecutor(2) as pool:
            ticks = list(pool.map(lambda c: c.tick(), (first, second)))
        acting = [d for t in ticks for d in t if d.action != "wait"]
        both_acted += len(acting) == 2
    assert reg.route("iris").champion == 2
    assert both_acted >= 1  # the race happened: both decided to act on one generation
    assert _rollout_events(reg) == [
        "rollout.started", "rollout.canary", "rollout.step", "rollout.step", "rollout.promoted",
    ]  # fmt: skip


def test_begin_refuses_what_cannot_be_rolled_out(reg: Registry, tmp_path: Path) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN)
    with pytest.raises(RolloutRefused, match="version 9 does not exist"):
        ctl.begin("iris", 9)
    with pytest.raises(RolloutRefused, match="already the champion"):
        ctl.begin("iris", 1)
    with pytest.raises(RolloutRefused, match="not registered"):
        ctl.begin("nothing", 1)
    first = ctl.begin("iris", 2)
    assert ctl.begin("iris", 2).generation == first.generation  # idempotent
    reg.register("iris", reg.load_model(reg.get("iris", 1)))
    with pytest.raises(RolloutRefused, match="rollout of version 2 is in progress"):
        ctl.begin("iris", 3)


def test_a_hand_change_ends_the_plan(reg: Registry, tmp_path: Path, clock: Clock) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    ctl.begin("iris", 2)
    rollout.rollback(reg, "iris", actor="test")  # in shadow: stops the shadow only
    route = reg.route("iris")
    assert route.champion == 1 and route.shadows == [] and route.rollout is None
    assert ctl.tick() == []
    plan = PLAN.replace(shadow_percent=0.0, shadow_s=0.0, shadow_requests=0)
    ctl.begin("iris", 2, plan=plan)
    rollout.set_weight(reg, "iris", 30.0, actor="test")  # a manual weight ends the plan
    assert reg.route("iris").rollout is None and ctl.tick() == []
    assert reg.route("iris").canary is not None  # the hand-set canary stays


def test_status_reports_plan_phase_and_figures(reg: Registry, tmp_path: Path, clock: Clock) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    assert ctl.status("iris")["active"] is False
    ctl.begin("iris", 2)
    Traffic(tmp_path / "logs", "iris").run(
        reg.route("iris"), clock.now, 5.0, 30, {1: Model(), 2: Model()}
    )
    clock.now += timedelta(seconds=5)
    status = ctl.status("iris")
    assert status["active"] and status["phase"] == "shadow" and status["steps"] == PLAN.steps
    checks = {v["check"]: v for v in status["decision"]["verdicts"]}
    assert checks["error_rate"]["n"] == 150 and checks["latency"]["n"] == 150
    assert status["events"][-1]["kind"] == "rollout.started"
    assert set(_rollout_events(reg)) <= set(EVENTS)
    with pytest.raises(RolloutRefused, match="not registered"):
        ctl.status("nothing")


def test_metrics_export_phase_and_check_figures(
    reg: Registry, tmp_path: Path, clock: Clock
) -> None:
    from prometheus_client import generate_latest

    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    ctl.begin("iris", 2)
    Traffic(tmp_path / "logs", "iris").run(
        reg.route("iris"), clock.now, 5.0, 30, {1: Model(), 2: Model()}
    )
    clock.now += timedelta(seconds=5)
    ctl.tick()
    text = generate_latest(ctl.collector_registry).decode()
    assert 'mlgate_rollout_phase{model="iris",phase="shadow"} 1.0' in text
    assert 'mlgate_rollout_check{check="error_rate",figure="n",model="iris"} 150.0' in text
    assert 'mlgate_rollout_check{check="latency",figure="threshold",model="iris"}' in text


def test_an_unreadable_log_waits_then_aborts(reg: Registry, tmp_path: Path, clock: Clock) -> None:
    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    ctl.begin("iris", 2)
    Traffic(tmp_path / "logs", "iris").run(reg.route("iris"), clock.now, 5.0, 30,
                                           {1: Model(), 2: Model()})  # fmt: skip
    day = next((tmp_path / "logs" / "predictions" / "model=iris").iterdir())
    (day / "w9-broken.parquet").write_bytes(b"PAR1 not really parquet")
    clock.now += timedelta(seconds=20)
    decision = ctl.tick_model("iris")
    assert decision is not None and decision.action == "wait"
    assert "log store unreadable" in decision.reason and "w9-broken" in decision.reason
    clock.now += timedelta(seconds=PLAN.max_wait_s)
    decision = ctl.tick_model("iris")
    assert decision is not None and decision.action == "abort"
    last = reg.events("iris")[-1]
    assert last.kind == "rollout.aborted" and "log store unreadable" in last.detail["reason"]
    assert reg.route("iris").shadows == []


def test_a_version_a_gateway_cannot_load_is_rolled_back(
    reg: Registry, tmp_path: Path, clock: Clock
) -> None:
    from registry.gateways import report_gateway

    ctl = RolloutController(reg, str(tmp_path / "logs"), PLAN, clock=clock)
    route = ctl.begin("iris", 2)
    report_gateway(reg, "iris", "gw-1", generation=route.generation, versions={1: "ready"},
                   errors={2: "UnsupportedModel: no kernel"})  # fmt: skip
    decision = ctl.tick_model("iris")
    assert decision is not None and decision.action == "rollback"
    last = reg.events("iris")[-1]
    assert last.kind == "rollout.rolled_back" and "no kernel" in last.detail["reason"]
    assert reg.route("iris").shadows == [] and reg.route("iris").champion == 1


def test_begin_takes_over_a_hand_set_canary_of_the_same_version(
    reg: Registry, tmp_path: Path
) -> None:
    rollout.start_rollout(reg, "iris", 2, weight=5.0, actor="test")
    route = RolloutController(reg, str(tmp_path / "logs"), PLAN).begin("iris", 2)
    assert route.canary is None and [s.version for s in route.shadows] == [2]
    assert route.rollout is not None and route.rollout["phase"] == "shadow"
