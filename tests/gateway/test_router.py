"""The canary/shadow router: share, stickiness, monotonicity, exact 0 and 100."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.router import (
    BUCKETS,
    NoChampion,
    bucket,
    choose,
    shadow_versions,
    threshold,
)
from registry.model import Canary, Route, Shadow

KEYS = [f"user-{i}" for i in range(10_000)]


def _route(
    weight: float, *, champion: int | None = 1, shadows: list[Shadow] | None = None
) -> Route:
    return Route(champion=champion, canary=Canary(version=2, weight=weight), shadows=shadows or [])


def _canary_keys(route: Route) -> set[str]:
    return {k for k in KEYS if choose(route, k).route == "canary"}


def test_weight_20_takes_20_percent_of_10000_keys() -> None:
    share = len(_canary_keys(_route(20))) / len(KEYS)
    assert 0.18 <= share <= 0.22, share


def test_each_key_sticks_to_its_side() -> None:
    route = _route(20)
    first = [choose(route, k) for k in KEYS]
    assert [choose(route, k) for k in KEYS] == first
    # a fresh but equal route (another replica reading route.json) decides the same
    assert [choose(_route(20), k) for k in KEYS] == first


def test_raising_the_weight_moves_no_key_back_to_champion() -> None:
    at20 = _canary_keys(_route(20))
    at50 = _canary_keys(_route(50))
    assert at20 <= at50
    assert 0.48 <= len(at50) / len(KEYS) <= 0.52


def test_weight_0_and_100_are_exact() -> None:
    assert _canary_keys(_route(0)) == set()
    assert _canary_keys(_route(100)) == set(KEYS)


def test_decision_names_version_and_route() -> None:
    route = _route(100)
    assert choose(route, "k") == (2, "canary")
    assert choose(Route(champion=7), "k") == (7, "champion")


def test_no_champion_raises() -> None:
    with pytest.raises(NoChampion):
        choose(Route(), "k")


def test_a_canary_that_is_not_ready_takes_no_traffic() -> None:
    route = _route(100)
    assert {choose(route, k, ready={1}).route for k in KEYS[:500]} == {"champion"}
    assert {choose(route, k, ready={1, 2}).route for k in KEYS[:500]} == {"canary"}


def test_shadow_percent_and_independence_from_canary() -> None:
    route = _route(20, shadows=[Shadow(version=3, percent=50)])
    shadowed = {k for k in KEYS if shadow_versions(route, k) == [3]}
    assert 0.48 <= len(shadowed) / len(KEYS) <= 0.52
    canary = _canary_keys(route)
    # the shadow sample is independent of the canary split: about half of the canary keys too
    both = len(shadowed & canary) / len(canary)
    assert 0.45 <= both <= 0.55


def test_shadow_skips_primary_and_unready_versions() -> None:
    route = Route(champion=1, shadows=[Shadow(version=1), Shadow(version=3)])
    assert shadow_versions(route, "k") == [1, 3]
    assert shadow_versions(route, "k", primary=1) == [3]
    assert shadow_versions(route, "k", ready={1}) == [1]
    assert shadow_versions(Route(champion=1, shadows=[Shadow(version=3, percent=0)]), "k") == []


@given(key=st.text(max_size=64), salt=st.text(max_size=16))
def test_bucket_is_in_range_and_deterministic(key: str, salt: str) -> None:
    b = bucket(key, salt)
    assert 0 <= b < BUCKETS
    assert bucket(key, salt) == b


@given(
    key=st.text(max_size=32),
    low=st.floats(min_value=0, max_value=100),
    high=st.floats(min_value=0, max_value=100),
)
def test_monotone_in_weight(key: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    if choose(_route(low), key).route == "canary":
        assert choose(_route(high), key).route == "canary"


@given(percent=st.floats(allow_nan=True, allow_infinity=True))
def test_threshold_is_clamped(percent: float) -> None:
    assert 0 <= threshold(percent) <= BUCKETS
