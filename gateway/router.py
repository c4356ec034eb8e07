"""Canary and shadow selection: a stable, monotone hash of the routing key.

A key maps to a bucket in ``[0, 10000)``. The canary takes the keys whose bucket is below
``weight * 100``, so the same key stays on one side while the weight is unchanged, and
raising the weight only moves keys from champion to canary (the threshold only grows).
Shadows use an independent bucket (salted with the shadow's version) against their percent.

Every replica computes the same answer from the same ``route.json``: the hash is
blake2b, not Python's per-process salted ``hash()``.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, NamedTuple

from registry.logschema import ROUTE_CANARY, ROUTE_CHAMPION

if TYPE_CHECKING:
    from collections.abc import Container

    from registry.model import Route

BUCKETS = 10_000


class RouteDecision(NamedTuple):
    version: int
    route: str  # "champion" | "canary"


class NoChampion(LookupError):
    """The model has no champion yet, so nothing can serve it."""


def bucket(key: str, salt: str = "") -> int:
    """Stable bucket of ``key`` in ``[0, 10000)``; the same on every replica and restart.

    >>> bucket("user-42") == bucket("user-42")
    True
    >>> 0 <= bucket("user-42") < BUCKETS
    True
    """
    digest = hashlib.blake2b((salt + key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def threshold(percent: float) -> int:
    """Number of buckets (out of 10,000) that ``percent`` covers, clamped to ``[0, 10000]``.

    >>> threshold(20), threshold(0), threshold(100), threshold(12.345)
    (2000, 0, 10000, 1234)
    """
    if not math.isfinite(percent) or percent <= 0:
        return 0
    if percent >= 100:
        return BUCKETS
    return round(percent * BUCKETS / 100)


def _takes(key: str, percent: float, salt: str = "") -> bool:
    return bucket(key, salt) < threshold(percent)


def choose(route: Route, key: str, *, ready: Container[int] | None = None) -> RouteDecision:
    """The version that answers a request with routing key ``key``.

    ``ready``, when given, holds the versions this gateway has loaded and warmed: a canary
    that is not ready (still loading, or failed to load) takes no traffic, its keys stay on
    the champion. Without ``ready`` the route is followed as written.
    """
    canary = route.canary
    canary_ok = canary is not None and (ready is None or canary.version in ready)
    if canary is not None and canary_ok and _takes(key, canary.weight):
        return RouteDecision(canary.version, ROUTE_CANARY)
    if route.champion is None:
        raise NoChampion("model has no champion version routed")
    return RouteDecision(route.champion, ROUTE_CHAMPION)


def shadow_versions(
    route: Route, key: str, *, ready: Container[int] | None = None, primary: int | None = None
) -> list[int]:
    """Versions that get a copy of this request (after the primary answer is sent).

    A shadow that is not in ``ready`` (when given) or that is the ``primary`` version that
    already answered is skipped: copying a request to the version that served it compares
    nothing.
    """
    return [
        s.version
        for s in route.shadows
        if s.version != primary
        and (ready is None or s.version in ready)
        and _takes(key, s.percent, salt=f"shadow:{s.version}:")
    ]
