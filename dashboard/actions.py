"""The dashboard's actions: the same registry calls (and so the same events) as the CLI's.

``mlgate rollout promote|rollback|weight|shadow`` call ``registry.rollout``'s functions;
``mlgate trainer retrain`` calls ``trainer.retrain``. Each action here calls the same function
with the same arguments, with ``actor="dashboard"`` in the event. Every action is two requests:
without ``confirm`` it changes nothing and answers what it would do (and the route generation
it was judged on); with ``confirm: true`` (and that generation, when given) it acts. A route
that moved in between is refused (409), so a confirmation never applies to a route the user
did not see.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from registry import InvalidRoute, rollout

if TYPE_CHECKING:
    from registry import Registry, Route

ACTOR = "dashboard"


class ActionError(Exception):
    """An action request we cannot carry out; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def describe(route: Route) -> str:
    """One line: champion, canary, shadows.

    >>> from registry import Route, Canary
    >>> describe(Route(champion=1, canary=Canary(2, 10.0)))
    'champion v1, canary v2 at 10%, no shadow'
    """
    return route.describe()


def _int(params: dict[str, Any], key: str, model: str, *, required: bool) -> int | None:
    raw = params.get(key)
    if raw is None:
        if required:
            raise ActionError(400, f"model '{model}': '{key}' is required, got none")
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ActionError(400, f"model '{model}': '{key}' must be an integer from 1, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise ActionError(
            400, f"model '{model}': '{key}' must be an integer from 1, got {raw!r}"
        ) from None
    if value < 1:
        raise ActionError(400, f"model '{model}': '{key}' must be an integer from 1, got {raw!r}")
    return value


def _percent(params: dict[str, Any], key: str, model: str, default: float | None) -> float:
    raw = params.get(key, default)
    if raw is None:
        raise ActionError(400, f"model '{model}': '{key}' is required, got none")
    try:
        return rollout.check_percent(model, key, raw)
    except InvalidRoute as exc:
        raise ActionError(400, str(exc)) from exc


@dataclass(frozen=True)
class Plan:
    """What an action will do: the sentence shown for confirmation and the call to make."""

    summary: str
    run: Callable[[], Any]
    background: bool = False


Retrain = Callable[[str], Any]


def plan(
    reg: Registry,
    model: str,
    action: str,
    params: dict[str, Any],
    *,
    retrain: Retrain | None = None,
) -> Plan:
    """Check ``params`` and describe ``action`` on the current route, changing nothing.

    ``retrain(model)`` starts a run; the composition root passes one built like the CLI's
    (``[trainer]`` and ``[rollout]`` settings); by default ``trainer.retrain`` on ``reg``."""
    route = reg.route(model)
    now = describe(route)
    if action == "promote":
        if route.canary is None:
            raise ActionError(409, f"model '{model}': there is no canary to promote ({now})")
        return Plan(
            f"Promote canary v{route.canary.version} of '{model}' to champion "
            f"(replacing v{route.champion}). Now: {now}.",
            lambda: rollout.promote(reg, model, actor=ACTOR),
        )
    if action == "rollback":
        what = (
            f"withdraw canary v{route.canary.version} ({route.canary.weight:g}%)"
            if route.canary is not None
            else f"restore the previous champion v{route.previous_champion}"
        )
        return Plan(
            f"Roll back '{model}': {what}. Now: {now}.",
            lambda: rollout.rollback(reg, model, actor=ACTOR),
        )
    if action == "weight":
        pct = _percent(params, "weight", model, None)
        if route.canary is None:
            raise ActionError(409, f"model '{model}': there is no canary to weigh ({now})")
        return Plan(
            f"Set the canary v{route.canary.version} of '{model}' to {pct:g}% of routing keys "
            f"(now {route.canary.weight:g}%).",
            lambda: rollout.set_weight(reg, model, pct, actor=ACTOR),
        )
    if action == "shadow":
        required = _int(params, "version", model, required=True)
        assert required is not None
        version = required
        reg.get(model, version)  # VersionNotFound (404) before anything is confirmed
        pct = _percent(params, "percent", model, 100.0)
        return Plan(
            f"Copy {pct:g}% of '{model}' requests to v{version} as a shadow. Now: {now}.",
            lambda: rollout.set_shadow(reg, model, version, percent=pct, actor=ACTOR),
        )
    if action == "shadow-off":
        off = _int(params, "version", model, required=False)
        which = f"shadow v{off}" if off is not None else "every shadow"
        return Plan(
            f"Stop {which} of '{model}'. Now: {now}.",
            lambda: rollout.clear_shadow(reg, model, off, actor=ACTOR),
        )
    if action == "retrain":
        if retrain is None:
            raise ActionError(
                501, "retraining is not available: the trainer is not installed (trainer.retrain)"
            )
        run = retrain
        return Plan(
            f"Start a retraining run of '{model}' (as `mlgate trainer retrain {model}`).",
            lambda: run(model),
            background=True,
        )
    raise ActionError(
        404,
        f"action: expected one of promote, rollback, weight, shadow, shadow-off, retrain, "
        f"got {action!r}",
    )


def default_retrain(reg: Registry, logs_url: str | None) -> Retrain | None:
    """``trainer.retrain`` on this registry and log store (None without a trainer)."""
    try:
        from trainer import retrain
    except ImportError:
        return None
    return lambda model: retrain(model, registry=reg, logs=logs_url)


class Runs:
    """Owns the retraining runs the dashboard started: each on its own thread (training
    never runs on the event loop), joined on shutdown."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self, fn: Callable[[], Any], *, name: str) -> None:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - the run writes its own failure event
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, name=f"dashboard-{name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def join(self, timeout_s: float) -> None:
        for t in self._threads:
            t.join(timeout_s)


def outcome(result: Any) -> dict[str, Any]:
    """The JSON of an action's result: a route, a run record or nothing."""
    if result is None:
        return {}
    if isinstance(result, msgspec.Struct):
        return {"route": msgspec.to_builtins(result)}
    if isinstance(result, dict):
        return {"result": result}
    return {"result": str(result)}
