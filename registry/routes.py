"""Route rules and the compare-and-swap loop that changes ``route.json``."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

import msgspec

from registry.errors import InvalidRoute, RegistryError, RouteConflict
from registry.model import Route

if TYPE_CHECKING:
    from collections.abc import Callable

    from registry.store import Store

MAX_ATTEMPTS = 100


def check_route(
    route: Route, *, name: str, previous: Route, has_version: Callable[[int], bool]
) -> None:
    """Raise ``InvalidRoute`` unless ``route`` is a consistent route of model ``name``.

    Versions that ``previous`` already routed are not looked up again.
    """
    if not isinstance(route, Route):
        raise InvalidRoute(f"route of {name!r}: the change returned {type(route).__name__}")
    canary, shadows = route.canary, route.shadows
    if canary is not None:
        if not 0.0 <= canary.weight <= 100.0:
            raise InvalidRoute(
                f"route of {name!r}: canary weight must be within 0-100, got {canary.weight}"
            )
        if canary.version == route.champion:
            raise InvalidRoute(
                f"route of {name!r}: canary version {canary.version} is already the champion"
            )
    seen: set[int] = set()
    for shadow in shadows:
        if not 0.0 <= shadow.percent <= 100.0:
            raise InvalidRoute(
                f"route of {name!r}: shadow percent must be within 0-100, got {shadow.percent}"
            )
        if shadow.version in seen or shadow.version == route.champion:
            raise InvalidRoute(
                f"route of {name!r}: version {shadow.version} is shadowed twice or is champion"
            )
        seen.add(shadow.version)
    known = set(previous.routed_versions())
    for version in route.routed_versions():
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidRoute(f"route of {name!r}: versions are integers >= 1, got {version!r}")
        if version not in known and not has_version(version):
            raise InvalidRoute(f"route of {name!r}: model {name!r} has no version {version}")


def decode(data: bytes, *, where: str) -> Route:
    try:
        return msgspec.json.decode(data, type=Route)
    except msgspec.DecodeError as exc:
        raise RegistryError(f"{where}: not a valid route.json: {exc}") from exc


def compare_and_swap(
    store: Store,
    key: str,
    change: Callable[[Route], Route],
    *,
    finish: Callable[[Route, Route], Route],
    where: str,
    attempts: int = MAX_ATTEMPTS,
) -> tuple[Route, Route]:
    """Apply ``change`` to the stored route until the write wins; returns (old, new).

    ``finish(old, new)`` validates and stamps the new route (generation, time). When
    ``change`` returns the route unchanged nothing is written and (old, old) is returned.
    """
    for attempt in range(attempts):
        current = store.read_tagged(key)
        old = decode(current[0], where=where) if current else Route()
        new = change(old)
        if new == old:
            return old, old
        new = finish(old, new)
        if store.write_if(key, msgspec.json.encode(new), tag=current[1] if current else None):
            return old, new
        time.sleep(random.uniform(0, min(0.1, 0.002 * 2 ** min(attempt, 6))))
    raise RouteConflict(f"{where}: lost the compare-and-swap {attempts} times in a row; retry")


def promoted(route: Route, version: int) -> Route:
    """``route`` with ``version`` as champion; the old champion is remembered and the
    version leaves the canary and shadow slots.

    >>> promoted(Route(champion=1), 2).champion, promoted(Route(champion=1), 2).previous_champion
    (2, 1)
    """
    if route.champion == version:
        return route
    return msgspec.structs.replace(
        route,
        champion=version,
        previous_champion=route.champion,
        canary=route.canary if route.canary and route.canary.version != version else None,
        shadows=[s for s in route.shadows if s.version != version],
    )
