"""Canary and shadow selection: a stable, monotone hash of the routing key.

A key maps to a bucket in ``[0, 10000)``. The canary takes the keys whose bucket is below
``weight * 100``, so the same key stays on one side while the weight is unchanged, and
raising the weight only moves keys from champion to canary (the threshold only grows).
Shadows use an independent bucket (salted with the shadow's version) against their percent.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, NamedTuple

from registry.logschema import ROUTE_CANARY, ROUTE_CHAMPION

if TYPE_CHECKING:
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


def _takes(key: str, percent: float, salt: str = "") -> bool:
    threshold = round(percent * BUCKETS / 100)
    return bucket(key, salt) < threshold


def choose(route: Route, key: str) -> RouteDecision:
    """The version that answers a request with routing key ``key``."""
    canary = route.canary
    if canary is not None and canary.weight > 0 and _takes(key, canary.weight):
        return RouteDecision(canary.version, ROUTE_CANARY)
    if route.champion is None:
        if canary is not None and canary.weight >= 100:
            return RouteDecision(canary.version, ROUTE_CANARY)
        raise NoChampion("model has no champion version routed")
    return RouteDecision(route.champion, ROUTE_CHAMPION)


def shadow_versions(route: Route, key: str) -> list[int]:
    """Versions that get a copy of this request (after the primary answer is sent)."""
    return [s.version for s in route.shadows if _takes(key, s.percent, salt=f"shadow:{s.version}:")]
