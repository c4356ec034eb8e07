"""Rollout actions on a model's route: canary, weight, shadow, promote, rollback.

Two layers:

- pure ``Route -> Route`` operations (``with_canary``, ``with_weight``, ``with_shadow``,
  ``without_shadow``, ``promoted``, ``rolled_back``, ``advanced``) that validate against what
  the registry knows (a :class:`Known`: committed versions, versions that failed to load) and
  raise :class:`InvalidRoute` with one clear message; they never touch storage;
- wrappers (``start_rollout``, ``set_weight``, ``set_shadow``, ``clear_shadow``, ``promote``,
  ``rollback``, ``advance_rollout``, ``withdraw_canary``) that run them through
  ``Registry.update_route``, the compare-and-swap on ``generation`` that appends every change
  to ``events.jsonl`` (event ``kind`` rollout | route | promote | rollback, ``detail.action``
  start | step | weight | shadow | shadow-off | promote | rollback | withdraw).

A version must be loadable before it takes traffic: its artifact must match the manifest's
sha256, and no live gateway (see :mod:`registry.gateways`) may report that it failed to load —
starting, weighting, shadowing or promoting it is refused with the reason. After a start,
``await_gateways`` waits for the live gateways to apply the new generation; the CLI withdraws
the canary when one of them reports that it cannot load it.

Rollout plans (``steps`` and ``interval_s`` in ``route.rollout``) advance through
``advance_rollout``: from ``mlgate rollout start --wait``, or from any long-running process
(the trainer's controller) calling it periodically; each step is taken once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from registry import routes
from registry.errors import InvalidRoute, ModelNotFound
from registry.gateways import GatewayState, failed_versions, failures, gateway_states
from registry.model import Canary, Route, Shadow

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from registry import Registry
    from registry.model import ModelVersion


@dataclass(frozen=True)
class Known:
    """What a route change is validated against: one model's committed versions and the
    versions that failed to load (version -> reason)."""

    model: str
    versions: frozenset[int]
    failed: Mapping[int, str] = field(default_factory=dict)

    def require_version(self, version: int) -> None:
        if version not in self.versions:
            listed = ", ".join(str(v) for v in sorted(self.versions)) or "none"
            raise InvalidRoute(
                f"model '{self.model}': version {version} does not exist (versions: {listed})"
            )

    def require_loadable(self, version: int) -> None:
        reason = self.failed.get(version)
        if reason is not None:
            raise InvalidRoute(
                f"model '{self.model}': version {version} failed to load, it cannot take "
                f"traffic: {reason}"
            )


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_percent(model: str, what: str, value: object) -> float:
    """``value`` as a float in ``[0, 100]``, else :class:`InvalidRoute` naming it.

    >>> check_percent("churn", "weight", 20)
    20.0
    """
    try:
        pct = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pct = math.nan
    if isinstance(value, bool) or not (0.0 <= pct <= 100.0):
        raise InvalidRoute(f"model '{model}': {what} must be a number from 0 to 100, got {value!r}")
    return pct


def check_steps(model: str, steps: Sequence[object]) -> list[float]:
    """A rollout plan's weights: each in ``[0, 100]``, strictly increasing, at least one.

    >>> check_steps("churn", [10, 50, 100])
    [10.0, 50.0, 100.0]
    """
    out = [check_percent(model, "each step weight", s) for s in steps]
    if not out:
        raise InvalidRoute(f"model '{model}': a rollout plan needs at least one step, got none")
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise InvalidRoute(
            f"model '{model}': rollout steps must be strictly increasing, got {list(steps)}"
        )
    return out


# --------------------------------------------------------------------- pure operations


def with_canary(
    route: Route,
    version: int,
    *,
    weight: float,
    known: Known,
    steps: Sequence[float] | None = None,
    interval_s: float | None = None,
    now: str | None = None,
) -> Route:
    """Route ``weight``% of keys to ``version`` as the canary (a plan's first step when
    ``steps`` is given). Re-starting the current canary only changes its weight and plan."""
    model = known.model
    known.require_version(version)
    known.require_loadable(version)
    if route.champion is None:
        raise InvalidRoute(
            f"model '{model}': no champion to compare a canary with; promote a version first"
        )
    if version == route.champion:
        raise InvalidRoute(f"model '{model}': version {version} is already the champion")
    if route.canary is not None and route.canary.version != version:
        raise InvalidRoute(
            f"model '{model}': version {route.canary.version} is already the canary at "
            f"{route.canary.weight:g}%; promote or roll it back before starting version {version}"
        )
    plan: dict[str, Any] | None = None
    if steps is not None:
        weights = check_steps(model, steps)
        if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
            raise InvalidRoute(
                f"model '{model}': rollout interval must be a positive number of seconds, "
                f"got {interval_s!r}"
            )
        weight = weights[0]
        stamp = now or _utcnow()
        plan = {
            "version": version,
            "steps": weights,
            "step": 0,
            "interval_s": interval_s,
            "started_at": stamp,
            "step_started_at": stamp,
        }
    else:
        weight = check_percent(model, "weight", weight)
    return msgspec.structs.replace(
        route, canary=Canary(version=version, weight=weight), rollout=plan
    )


def with_weight(route: Route, weight: float, *, known: Known) -> Route:
    """Set the canary's weight; a manual weight ends any automated plan."""
    weight = check_percent(known.model, "weight", weight)
    if route.canary is None:
        raise InvalidRoute(f"model '{known.model}': no canary to set a weight on; start one first")
    if weight > 0:
        known.require_loadable(route.canary.version)
    canary = Canary(version=route.canary.version, weight=weight)
    return msgspec.structs.replace(route, canary=canary, rollout=None)


def with_shadow(route: Route, version: int, *, percent: float, known: Known) -> Route:
    """Copy ``percent``% of requests to ``version`` (added, or its percent replaced)."""
    percent = check_percent(known.model, "shadow percent", percent)
    known.require_version(version)
    known.require_loadable(version)
    if version == route.champion:
        raise InvalidRoute(
            f"model '{known.model}': version {version} is the champion; it cannot shadow itself"
        )
    shadows = [s for s in route.shadows if s.version != version]
    shadows.append(Shadow(version=version, percent=percent))
    return msgspec.structs.replace(route, shadows=sorted(shadows, key=lambda s: s.version))


def without_shadow(route: Route, version: int | None = None, *, known: Known) -> Route:
    """Remove the shadow of ``version``, or every shadow when ``version`` is None."""
    if not route.shadows:
        raise InvalidRoute(f"model '{known.model}': there is no shadow to turn off")
    if version is None:
        return msgspec.structs.replace(route, shadows=[])
    if all(s.version != version for s in route.shadows):
        current = ", ".join(str(s.version) for s in route.shadows)
        raise InvalidRoute(
            f"model '{known.model}': version {version} is not a shadow (shadows: {current})"
        )
    return msgspec.structs.replace(
        route, shadows=[s for s in route.shadows if s.version != version]
    )


def promoted(route: Route, *, known: Known) -> Route:
    """The canary becomes champion at once; the old champion is remembered for rollback."""
    if route.canary is None:
        raise InvalidRoute(
            f"model '{known.model}': cannot promote, there is no canary "
            f"(champion is version {route.champion})"
        )
    new = route.canary.version
    known.require_loadable(new)
    return msgspec.structs.replace(routes.promoted(route, new), rollout=None)


def rolled_back(route: Route, *, known: Known) -> Route:
    """Remove the canary (all its keys back on the champion); during the shadow phase of an
    analysed rollout, remove its shadow; otherwise restore the previous champion at once."""
    if route.canary is not None:
        return msgspec.structs.replace(route, canary=None, rollout=None)
    if route.rollout and route.rollout.get("analysed"):
        # an analysed rollout still in shadow: stop it, the champion stays
        version = route.rollout.get("version")
        shadows = [s for s in route.shadows if s.version != version]
        return msgspec.structs.replace(route, shadows=shadows, rollout=None)
    if route.previous_champion is not None:
        if route.previous_champion not in known.versions:
            raise InvalidRoute(
                f"model '{known.model}': previous champion version {route.previous_champion} "
                "no longer exists; nothing to roll back to"
            )
        # like every other traffic change: not onto a version the gateways failed to load
        known.require_loadable(route.previous_champion)
        return msgspec.structs.replace(
            route,
            champion=route.previous_champion,
            previous_champion=None,
            shadows=[s for s in route.shadows if s.version != route.previous_champion],
            rollout=None,
        )
    raise InvalidRoute(
        f"model '{known.model}': nothing to roll back, there is no canary and no previous champion"
    )


def _elapsed_s(since: str, now: datetime) -> float:
    started = datetime.fromisoformat(since.replace("Z", "+00:00"))
    return (now - started).total_seconds()


def advanced(route: Route, *, known: Known, now: datetime) -> Route:
    """The next state of an automated plan (``route.rollout``) at time ``now``: the next step's
    weight once ``interval_s`` has passed on the current one, a promote after the last step.
    Unchanged when nothing is due (or the plan has no interval: it is advanced by hand)."""
    plan = route.rollout
    if not plan or route.canary is None or plan.get("interval_s") is None:
        return route
    if plan.get("version") != route.canary.version:
        return route
    if _elapsed_s(str(plan["step_started_at"]), now) < float(plan["interval_s"]):
        return route
    step = int(plan["step"]) + 1
    steps = [float(s) for s in plan["steps"]]
    if step >= len(steps):
        return promoted(route, known=known)
    known.require_loadable(route.canary.version)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    new_plan = {**plan, "step": step, "step_started_at": stamp}
    canary = Canary(version=route.canary.version, weight=steps[step])
    return msgspec.structs.replace(route, canary=canary, rollout=new_plan)


# --------------------------------------------------------------------- registry wrappers


class _NotDue(InvalidRoute):
    """Raised inside a compare-and-swap to abandon it without writing."""


def known(
    reg: Registry,
    name: str,
    *,
    max_age_s: float = 30.0,
    states: list[GatewayState] | None = None,
) -> Known:
    """Committed versions of ``name`` and the versions its live gateways failed to load
    (from ``states``, the gateway reports, when the caller has read them already)."""
    try:
        versions = frozenset(mv.version for mv in reg.versions(name))
    except ModelNotFound as exc:
        raise InvalidRoute(f"model '{name}' is not registered") from exc
    if not versions:
        raise InvalidRoute(f"model '{name}' is not registered")
    if states is None:
        return Known(name, versions, failed_versions(reg, name, max_age_s=max_age_s))
    return Known(name, versions, failures(states))


def _verify(
    reg: Registry, k: Known, version: int, check: Callable[[ModelVersion], None] | None
) -> None:
    """Before a version takes traffic: it exists, no live gateway failed to load it, its
    artifact matches the manifest's sha256, and ``check`` (if any) passes."""
    k.require_version(version)
    k.require_loadable(version)
    mv = reg.get(k.model, version)
    try:
        reg.artifact_bytes(mv)
        if check is not None:
            check(mv)
    except Exception as exc:  # noqa: BLE001 - any load failure refuses the change
        raise InvalidRoute(
            f"model '{k.model}': version {version} failed to load, it cannot take traffic: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def start_rollout(
    reg: Registry,
    name: str,
    version: int,
    *,
    weight: float = 10.0,
    steps: Sequence[float] | None = None,
    interval_s: float | None = None,
    actor: str | None = None,
    check: Callable[[ModelVersion], None] | None = None,
) -> Route:
    """Make ``version`` the canary at ``weight``% (or at the first of ``steps``).

    The artifact's sha256 is verified first; ``check``, when given, is run on the version's
    manifest too (for example a trial load by the caller). A failure of either becomes
    :class:`InvalidRoute` and nothing changes.
    """
    k = known(reg, name)
    _verify(reg, k, version, check)
    detail: dict[str, Any] = {"action": "start", "version": version, "weight": weight}
    if steps is not None:
        detail.update(weight=steps[0] if steps else None, steps=list(steps), interval_s=interval_s)
    return reg.update_route(
        name,
        lambda r: with_canary(
            r, version, weight=weight, known=k, steps=steps, interval_s=interval_s
        ),
        kind="rollout",
        detail=detail,
        actor=actor,
    )


def set_weight(reg: Registry, name: str, pct: float, *, actor: str | None = None) -> Route:
    """Set the canary's weight to ``pct``%."""
    k = known(reg, name)
    return reg.update_route(
        name,
        lambda r: with_weight(r, pct, known=k),
        kind="route",
        detail={"action": "weight", "weight": pct},
        actor=actor,
    )


def set_shadow(
    reg: Registry, name: str, version: int, *, percent: float = 100.0, actor: str | None = None
) -> Route:
    """Copy ``percent``% of requests to ``version`` as a shadow (artifact verified first)."""
    k = known(reg, name)
    _verify(reg, k, version, None)
    return reg.update_route(
        name,
        lambda r: with_shadow(r, version, percent=percent, known=k),
        kind="route",
        detail={"action": "shadow", "version": version, "percent": percent},
        actor=actor,
    )


def clear_shadow(
    reg: Registry, name: str, version: int | None = None, *, actor: str | None = None
) -> Route:
    """Stop shadowing ``version`` (every shadow when None)."""
    k = known(reg, name)
    return reg.update_route(
        name,
        lambda r: without_shadow(r, version, known=k),
        kind="route",
        detail={"action": "shadow-off", "version": version},
        actor=actor,
    )


def promote(reg: Registry, name: str, *, actor: str | None = None) -> Route:
    """Make the canary the champion now."""
    k = known(reg, name)
    # filled by the attempt that wins the compare-and-swap, so the event names the route
    # that was really changed (update_route copies ``detail`` only after the swap)
    detail: dict[str, Any] = {"action": "promote"}

    def change(route: Route) -> Route:
        new = promoted(route, known=k)
        detail.update(version=new.champion, previous_champion=route.champion)
        return new

    return reg.update_route(name, change, kind="promote", detail=detail, actor=actor)


def rollback(reg: Registry, name: str, *, actor: str | None = None) -> Route:
    """Send all traffic back to the champion now (or restore the previous champion)."""
    k = known(reg, name)
    detail: dict[str, Any] = {"action": "rollback"}

    def change(route: Route) -> Route:
        new = rolled_back(route, known=k)
        detail.clear()
        detail["action"] = "rollback"
        if route.canary is not None:
            detail.update(canary=route.canary.version, weight=route.canary.weight)
        else:
            detail.update(champion=new.champion, replaced=route.champion)
        return new

    return reg.update_route(name, change, kind="rollback", detail=detail, actor=actor)


def withdraw_canary(
    reg: Registry, name: str, version: int, *, reason: str, actor: str | None = None
) -> Route:
    """Remove the canary if it is still ``version`` (a rollout that failed to load on a
    gateway is undone); any other route is left as it is."""
    known(reg, name)

    def change(route: Route) -> Route:
        if route.canary is None or route.canary.version != version:
            return route  # someone changed it meanwhile: nothing of ours to undo
        return msgspec.structs.replace(route, canary=None, rollout=None)

    detail = {"action": "withdraw", "version": version, "reason": reason}
    return reg.update_route(name, change, kind="rollback", detail=detail, actor=actor)


def await_gateways(
    reg: Registry,
    name: str,
    generation: int,
    *,
    version: int | None = None,
    timeout_s: float = 10.0,
    poll_s: float = 0.2,
    max_age_s: float = 30.0,
) -> tuple[list[GatewayState], str | None]:
    """Wait until every live gateway of ``name`` reports ``generation`` (or later), or one
    reports that ``version`` failed to load. Returns the gateways still behind at the deadline
    and the failure (``"<gateway>: <reason>"``), if any. No live gateway: returns at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = gateway_states(reg, name, max_age_s=max_age_s)
        for state in states:
            if version is not None and version in state.errors and state.generation >= generation:
                return [], f"{state.gateway_id}: {state.errors[version]}"
        behind = [s for s in states if s.generation < generation]
        if not behind or time.monotonic() >= deadline:
            return behind, None
        time.sleep(poll_s)  # polling another process's report files, with a deadline


def advance_rollout(
    reg: Registry, name: str, *, now: datetime | None = None, actor: str | None = None
) -> Route | None:
    """Advance ``name``'s automated plan if a step is due; None when nothing was due.

    Safe to call from any number of processes: the compare-and-swap re-checks the plan, so a
    step is taken once.
    """
    at = now or datetime.now(UTC)
    route = reg.route(name)
    k = known(reg, name)
    if advanced(route, known=k, now=at) is route:
        return None
    plan = route.rollout or {}
    final = int(plan.get("step", 0)) + 1 >= len(plan.get("steps", []))

    def change(current: Route) -> Route:
        nxt = advanced(current, known=k, now=at)
        if nxt is current:  # another process took this step meanwhile: write nothing
            raise _NotDue(f"model '{name}': no rollout step is due")
        return nxt

    try:
        return reg.update_route(
            name,
            change,
            kind="promote" if final else "rollout",
            detail={"action": "promote" if final else "step", "plan": plan},
            actor=actor,
        )
    except _NotDue:
        return None
