"""Rollout actions: the pure route operations and their registry wrappers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import Registry, rollout
from registry.errors import InvalidRoute, RegistryError
from registry.gateways import failed_versions, gateway_states, report_gateway
from registry.model import Canary, Route, Shadow
from registry.routes import check_route
from tests.helpers import fitted_churn

K = rollout.Known("churn", frozenset({1, 2, 3, 4}))
BASE = Route(champion=1, generation=5)


# ----------------------------------------------------------------------------- pure operations


def test_with_canary_sets_version_and_weight() -> None:
    r = rollout.with_canary(BASE, 2, weight=20, known=K)
    assert r.canary == Canary(version=2, weight=20.0)
    assert r.champion == 1 and r.generation == 5  # the registry bumps generation, not us


@pytest.mark.parametrize("weight", [-1, 100.5, math.nan, math.inf, "x", None, True])
def test_weight_outside_0_100_is_refused(weight: object) -> None:
    with pytest.raises(InvalidRoute, match=r"weight must be a number from 0 to 100, got"):
        rollout.with_canary(BASE, 2, weight=weight, known=K)  # type: ignore[arg-type]


def test_unknown_version_names_the_known_ones() -> None:
    with pytest.raises(InvalidRoute, match=r"version 9 does not exist \(versions: 1, 2, 3, 4\)"):
        rollout.with_canary(BASE, 9, weight=10, known=K)


def test_canary_refusals() -> None:
    with pytest.raises(InvalidRoute, match="already the champion"):
        rollout.with_canary(BASE, 1, weight=10, known=K)
    with pytest.raises(InvalidRoute, match="no champion"):
        rollout.with_canary(Route(), 2, weight=10, known=K)
    busy = rollout.with_canary(BASE, 2, weight=10, known=K)
    with pytest.raises(InvalidRoute, match="version 2 is already the canary at 10%"):
        rollout.with_canary(busy, 3, weight=10, known=K)
    # restarting the same canary just sets its weight
    assert rollout.with_canary(busy, 2, weight=30, known=K).canary == Canary(2, 30.0)


def test_failed_version_cannot_take_traffic() -> None:
    k = rollout.Known("churn", K.versions, {2: "gw-a: ArtifactCorrupt: sha256 mismatch"})
    for op in (
        lambda: rollout.with_canary(BASE, 2, weight=10, known=k),
        lambda: rollout.with_shadow(BASE, 2, percent=10, known=k),
        lambda: rollout.with_weight(Route(champion=1, canary=Canary(2, 0)), 5, known=k),
        lambda: rollout.promoted(Route(champion=1, canary=Canary(2, 5)), known=k),
        # nor may a rollback restore a previous champion that failed to load
        lambda: rollout.rolled_back(Route(champion=3, previous_champion=2), known=k),
    ):
        with pytest.raises(InvalidRoute, match="version 2 failed to load.*sha256 mismatch"):
            op()
    # but its weight may go to 0 and it may be rolled back
    zero = rollout.with_weight(Route(champion=1, canary=Canary(2, 5)), 0, known=k)
    assert zero.canary == Canary(2, 0.0)
    assert rollout.rolled_back(zero, known=k).canary is None


def test_weight_needs_a_canary_and_ends_a_plan() -> None:
    with pytest.raises(InvalidRoute, match="no canary to set a weight on"):
        rollout.with_weight(BASE, 10, known=K)
    planned = rollout.with_canary(BASE, 2, weight=0, steps=[10, 50], interval_s=60, known=K)
    assert planned.rollout is not None
    assert rollout.with_weight(planned, 70, known=K).rollout is None


def test_shadow_on_and_off() -> None:
    r = rollout.with_shadow(BASE, 3, percent=50, known=K)
    r = rollout.with_shadow(r, 2, percent=100, known=K)
    assert r.shadows == [Shadow(2, 100.0), Shadow(3, 50.0)]
    assert rollout.with_shadow(r, 3, percent=10, known=K).shadows[1] == Shadow(3, 10.0)
    assert rollout.without_shadow(r, 3, known=K).shadows == [Shadow(2, 100.0)]
    assert rollout.without_shadow(r, known=K).shadows == []
    with pytest.raises(InvalidRoute, match=r"version 4 is not a shadow \(shadows: 2, 3\)"):
        rollout.without_shadow(r, 4, known=K)
    with pytest.raises(InvalidRoute, match="no shadow to turn off"):
        rollout.without_shadow(BASE, known=K)
    with pytest.raises(InvalidRoute, match="cannot shadow itself"):
        rollout.with_shadow(BASE, 1, percent=10, known=K)
    with pytest.raises(InvalidRoute, match="shadow percent must be a number from 0 to 100"):
        rollout.with_shadow(BASE, 3, percent=101, known=K)


def test_promote_and_rollback_cycle() -> None:
    with pytest.raises(InvalidRoute, match="cannot promote, there is no canary"):
        rollout.promoted(BASE, known=K)
    r = rollout.with_shadow(rollout.with_canary(BASE, 2, weight=20, known=K), 2, percent=5, known=K)
    p = rollout.promoted(r, known=K)
    assert (p.champion, p.canary, p.previous_champion, p.shadows) == (2, None, 1, [])
    back = rollout.rolled_back(p, known=K)
    assert (back.champion, back.previous_champion) == (1, None)
    with pytest.raises(InvalidRoute, match="nothing to roll back"):
        rollout.rolled_back(back, known=K)
    # with a canary, rollback removes it and leaves the champion (and shadows) alone
    rb = rollout.rolled_back(r, known=K)
    assert (rb.champion, rb.canary, rb.shadows) == (1, None, [Shadow(2, 5.0)])


def test_plan_steps_then_promotes() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    r = rollout.with_canary(
        BASE, 2, weight=0, steps=[10, 50, 100], interval_s=60, known=K, now="2026-01-01T00:00:00Z"
    )
    assert r.canary == Canary(2, 10.0)
    assert rollout.advanced(r, known=K, now=t0 + timedelta(seconds=59)) is r
    r = rollout.advanced(r, known=K, now=t0 + timedelta(seconds=60))
    assert r.canary == Canary(2, 50.0) and r.rollout is not None and r.rollout["step"] == 1
    r = rollout.advanced(r, known=K, now=t0 + timedelta(seconds=120))
    assert r.canary == Canary(2, 100.0)
    r = rollout.advanced(r, known=K, now=t0 + timedelta(seconds=180))
    assert (r.champion, r.canary, r.previous_champion, r.rollout) == (2, None, 1, None)


@pytest.mark.parametrize(
    ("steps", "message"),
    [([], "at least one step"), ([50, 10], "strictly increasing"), ([10, 200], "0 to 100")],
)
def test_bad_plans_are_refused(steps: list[float], message: str) -> None:
    with pytest.raises(InvalidRoute, match=message):
        rollout.with_canary(BASE, 2, weight=0, steps=steps, interval_s=1, known=K)
    with pytest.raises(InvalidRoute, match="interval must be a positive"):
        rollout.with_canary(BASE, 2, weight=0, steps=[10], interval_s=0, known=K)


@given(weights=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=8))
def test_any_valid_weight_sequence_keeps_one_consistent_canary(weights: list[float]) -> None:
    r = rollout.with_canary(BASE, 2, weight=weights[0], known=K)
    for w in weights[1:]:
        r = rollout.with_weight(r, w, known=K)
    assert r.canary == Canary(2, weights[-1]) and r.champion == 1


_OPS = st.one_of(
    st.tuples(st.just("start"), st.integers(1, 5), st.floats(-10, 110)),
    st.tuples(st.just("weight"), st.just(0), st.floats(-10, 110)),
    st.tuples(st.just("shadow"), st.integers(1, 5), st.floats(0, 100)),
    st.tuples(st.just("shadow-off"), st.integers(0, 5), st.just(0.0)),
    st.tuples(st.just("promote"), st.just(0), st.just(0.0)),
    st.tuples(st.just("rollback"), st.just(0), st.just(0.0)),
)


def _step(route: Route, op: tuple[str, int, float]) -> Route:
    kind, version, value = op
    if kind == "start":
        return rollout.with_canary(route, version, weight=value, known=K)
    if kind == "weight":
        return rollout.with_weight(route, value, known=K)
    if kind == "shadow":
        return rollout.with_shadow(route, version, percent=value, known=K)
    if kind == "shadow-off":
        return rollout.without_shadow(route, version or None, known=K)
    if kind == "promote":
        return rollout.promoted(route, known=K)
    return rollout.rolled_back(route, known=K)


@given(ops=st.lists(_OPS, max_size=25))
def test_any_sequence_of_actions_keeps_a_valid_route(ops: list[tuple[str, int, float]]) -> None:
    """Whatever users do, the route stays one the registry accepts, with versions that
    exist; a refused action raises InvalidRoute (and, being pure, changes nothing)."""
    route = BASE
    for op in ops:
        try:
            route = _step(route, op)
        except InvalidRoute:
            continue
        check_route(route, name="churn", previous=BASE, has_version=K.versions.__contains__)
        assert route.champion in K.versions
        if route.canary is not None:
            assert route.canary.version != route.champion


# ----------------------------------------------------------------------------- registry wrappers


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(str(tmp_path / "registry"))
    for seed in range(3):
        registry.register("churn", fitted_churn(seed))
    return registry


def test_wrappers_change_route_and_append_events(reg: Registry) -> None:
    g0 = reg.route("churn").generation
    rollout.start_rollout(reg, "churn", 2, weight=20)
    rollout.set_weight(reg, "churn", 50)
    rollout.set_shadow(reg, "churn", 3, percent=25)
    rollout.clear_shadow(reg, "churn")
    route = rollout.promote(reg, "churn")
    assert (route.champion, route.previous_champion, route.canary) == (2, 1, None)
    assert route.generation == g0 + 5
    route = rollout.rollback(reg, "churn")
    assert route.champion == 1
    kinds = [(e.kind, e.detail.get("action")) for e in reg.events("churn")][-6:]
    assert kinds == [
        ("rollout", "start"),
        ("route", "weight"),
        ("route", "shadow"),
        ("route", "shadow-off"),
        ("promote", "promote"),
        ("rollback", "rollback"),
    ]


def test_bad_input_leaves_route_unchanged(reg: Registry) -> None:
    before = reg.route("churn")
    n_events = len(reg.events("churn"))
    for call, message in [
        (lambda: rollout.start_rollout(reg, "churn", 7), "version 7 does not exist"),
        (lambda: rollout.start_rollout(reg, "nope", 2), "model 'nope' is not registered"),
        (lambda: rollout.start_rollout(reg, "churn", 2, weight=101), "from 0 to 100"),
        (lambda: rollout.set_weight(reg, "churn", 10), "no canary"),
        (lambda: rollout.promote(reg, "churn"), "cannot promote"),
        (lambda: rollout.rollback(reg, "churn"), "nothing to roll back"),
    ]:
        with pytest.raises(InvalidRoute, match=message):
            call()
    assert reg.route("churn") == before
    assert len(reg.events("churn")) == n_events


def test_corrupt_artifact_is_refused(reg: Registry, tmp_path: Path) -> None:
    mv = reg.get("churn", 2)
    path = tmp_path / "registry" / "models" / "churn" / "versions" / "2" / mv.artifact
    path.write_bytes(path.read_bytes() + b"tampered")
    before = reg.route("churn")
    for call in (
        lambda: rollout.start_rollout(reg, "churn", 2),
        lambda: rollout.set_shadow(reg, "churn", 2),
    ):
        with pytest.raises(InvalidRoute, match="version 2 failed to load.*sha256 mismatch"):
            call()
    assert reg.route("churn") == before


def test_check_failure_refuses_the_rollout(reg: Registry) -> None:
    def broken(_mv: object) -> None:
        raise ValueError("cannot compile")

    with pytest.raises(InvalidRoute, match="version 2 failed to load.*cannot compile"):
        rollout.start_rollout(reg, "churn", 2, check=broken)
    assert reg.route("churn").canary is None


@pytest.fixture
def any_reg(registry_url: str) -> Registry:
    registry = Registry(registry_url)
    for seed in range(2):
        registry.register("churn", fitted_churn(seed))
    return registry


def test_gateway_reports_on_each_backend(any_reg: Registry) -> None:
    report_gateway(any_reg, "churn", "gw-1", generation=1, versions={1: "ready"}, errors={2: "x"})
    report_gateway(any_reg, "churn", "gw-1", generation=2, versions={1: "ready"}, errors={})
    states = gateway_states(any_reg, "churn")
    assert [(s.gateway_id, s.generation, s.errors) for s in states] == [("gw-1", 2, {})]
    assert rollout.start_rollout(any_reg, "churn", 2, weight=5).canary == Canary(2, 5.0)


def test_gateway_reports_are_live_and_block_failed_versions(reg: Registry) -> None:
    assert gateway_states(reg, "churn") == []
    report_gateway(reg, "churn", "gw-a", generation=1, versions={1: "ready"}, errors={})
    report_gateway(
        reg,
        "churn",
        "gw-b",
        generation=1,
        versions={1: "ready", 2: "failed"},
        errors={2: "ArtifactCorrupt: sha256 mismatch"},
    )
    states = gateway_states(reg, "churn")
    assert [(s.gateway_id, s.generation, s.versions) for s in states] == [
        ("gw-a", 1, {1: "ready"}),
        ("gw-b", 1, {1: "ready", 2: "failed"}),
    ]
    assert failed_versions(reg, "churn") == {2: "gw-b: ArtifactCorrupt: sha256 mismatch"}
    with pytest.raises(InvalidRoute, match="version 2 failed to load.*gw-b.*sha256"):
        rollout.start_rollout(reg, "churn", 2)
    # a report older than max_age_s is not live
    assert gateway_states(reg, "churn", max_age_s=-1) == []
    with pytest.raises(RegistryError, match="gateway id must match"):
        report_gateway(reg, "churn", "../x", generation=1, versions={}, errors={})


def test_advance_rollout_takes_each_step_once(reg: Registry) -> None:
    rollout.start_rollout(reg, "churn", 2, steps=[10, 50], interval_s=30)
    now = datetime.now(UTC)
    assert rollout.advance_rollout(reg, "churn", now=now) is None
    later = now + timedelta(seconds=31)
    stepped = rollout.advance_rollout(reg, "churn", now=later)
    assert stepped is not None and stepped.canary == Canary(2, 50.0)
    assert rollout.advance_rollout(reg, "churn", now=later) is None
    done = rollout.advance_rollout(reg, "churn", now=later + timedelta(seconds=31))
    assert done is not None and (done.champion, done.previous_champion) == (2, 1)
