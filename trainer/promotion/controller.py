"""``RolloutController``: drives analysed rollouts from shadow to champion, or back.

The state of a rollout lives in its route (``route.json``, key ``rollout``), never in the
process: any process with the registry and the log store can continue it, and two processes
ticking at once take each step once, because every transition is a compare-and-swap that
re-checks the route's ``generation`` it was decided on (the loser writes nothing).

Phases: ``shadow`` (the candidate gets a copy of ``shadow_percent`` of requests), then one
``canary`` phase per step weight (the shadow stays on, so champion-routed requests keep
giving paired evidence), then ``promote``. Each phase is analysed from the log store
(:mod:`trainer.promotion.analysis`) at most every ``analysis_interval_s``:

- a failed check rolls back at once (``rollout.rolled_back``, with the failing figures);
- every required check passed and the phase held long enough: the next phase
  (``rollout.canary``, ``rollout.step``) or champion (``rollout.promoted``);
- still inconclusive ``max_wait_s`` after the phase began: aborted (``rollout.aborted``).

Events go to the model's ``events.jsonl`` through the registry's route change (one event per
transition, with the route's generation); the monitor forwards ``rollout.*`` events to the
signed webhooks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from monitor.ingest.logstore import LogStore
from registry import rollout as actions
from registry import routes
from registry.errors import InvalidRoute, ModelNotFound, RegistryError
from registry.gateways import failed_versions
from registry.model import Canary, Route, Shadow
from trainer.promotion import analysis, evidence
from trainer.promotion.checks import FAIL, INCONCLUSIVE, PASS, SKIPPED, Verdict
from trainer.promotion.errors import RolloutRefused
from trainer.promotion.metrics import RolloutMetrics
from trainer.promotion.plan import RolloutPlan

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from registry import Registry

log = logging.getLogger(__name__)

SHADOW = "shadow"
CANARY = "canary"
EVENT_STARTED = "rollout.started"
EVENT_CANARY = "rollout.canary"
EVENT_STEP = "rollout.step"
EVENT_PROMOTED = "rollout.promoted"
EVENT_ROLLED_BACK = "rollout.rolled_back"
EVENT_ABORTED = "rollout.aborted"
EVENTS = (EVENT_STARTED, EVENT_CANARY, EVENT_STEP, EVENT_PROMOTED, EVENT_ROLLED_BACK,
          EVENT_ABORTED)  # fmt: skip


class _Stale(Exception):
    """Raised inside a compare-and-swap: the route moved since it was analysed."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_analysed(route: Route) -> bool:
    """Whether ``route`` carries an analysed rollout (``mlgate rollout start --analysed``)."""
    return bool(route.rollout and route.rollout.get("analysed"))


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What one analysis of one rollout concluded (``action``: wait, advance, promote,
    rollback, abort) and the verdicts behind it."""

    model: str
    version: int
    phase: str
    weight: float
    action: str
    reason: str
    verdicts: list[Verdict]
    elapsed_s: float
    held: bool

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class RolloutController:
    """Starts, advances and reports analysed rollouts (see the module docstring).

    ``logs``: the log store URL (or a monitor ``LogStore``). ``plan``: the default plan,
    overridden per model by ``[rollout.models.<name>]`` and per rollout by ``begin(plan=)``.
    ``clock``: returns the current UTC time (tests step it).
    """

    def __init__(
        self,
        registry: Registry,
        logs: str | LogStore,
        plan: RolloutPlan | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        actor: str = "rollout-controller",
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry
        self.logs = logs if isinstance(logs, LogStore) else LogStore(logs)
        self.plan = plan or RolloutPlan()
        self.actor = actor
        self._clock = clock or (lambda: datetime.now(UTC))
        self.metrics = RolloutMetrics(metrics_registry)
        self._analysed_at: dict[tuple[str, int], datetime] = {}
        self.last: dict[str, Decision] = {}

    @property
    def collector_registry(self) -> CollectorRegistry:
        """The Prometheus registry holding ``mlgate_rollout_*`` (serve it on ``/metrics``)."""
        return self.metrics.registry

    # -- begin --------------------------------------------------------------------------------
    def begin(self, name: str, version: int, *, plan: RolloutPlan | None = None) -> Route:
        """Start an analysed rollout of ``version`` (shadow first, unless the plan has none).

        Refused (:class:`RolloutRefused`, nothing changed) when the version does not exist,
        its artifact does not match its manifest, it is the champion, or another rollout is
        in progress. Starting the rollout that is already running returns its route.
        """
        chosen = plan or self.plan.for_model(name)
        try:
            known = actions.known(self.registry, name)
            known.require_version(version)
            known.require_loadable(version)
            self.registry.artifact_bytes(self.registry.get(name, version))
        except RegistryError as exc:
            raise RolloutRefused(str(exc)) from exc
        now = self._clock()
        detail: dict[str, Any] = {}

        def change(route: Route) -> Route:
            state = route.rollout or {}
            if is_analysed(route) and state.get("version") == version:
                return route  # already running: nothing to write
            if route.champion is None:
                raise RolloutRefused(
                    f"model '{name}': no champion to compare version {version} with"
                )
            if route.champion == version:
                raise RolloutRefused(f"model '{name}': version {version} is already the champion")
            if route.rollout or (route.canary is not None and route.canary.version != version):
                busy = state.get("version", route.canary.version if route.canary else "?")
                raise RolloutRefused(
                    f"model '{name}': a rollout of version {busy} is in progress; promote or roll "
                    f"it back before starting version {version}"
                )
            new = _started(route, version, chosen, now)
            detail.clear()
            detail.update(version=version, champion=route.champion,
                          phase=new.rollout["phase"] if new.rollout else None,
                          weight=new.canary.weight if new.canary else 0.0,
                          plan=chosen.to_dict())  # fmt: skip
            return new

        try:
            return self.registry.update_route(
                name, change, kind=EVENT_STARTED, detail=detail, actor=self.actor
            )
        except InvalidRoute as exc:
            raise RolloutRefused(str(exc)) from exc

    # -- tick ---------------------------------------------------------------------------------
    def tick(self) -> list[Decision]:
        """Advance every model's rollout by at most one step; returns what was analysed.

        Idempotent and safe from many processes. Time-only plans (``rollout start --steps
        --interval``) are advanced too, through ``registry.advance_rollout``. A model whose
        analysis fails (storage error) is logged and skipped until the next tick.
        """
        out: list[Decision] = []
        try:
            names = self.registry.list()
        except (RegistryError, OSError) as exc:
            log.warning("rollout controller: cannot list models: %s", exc)
            return out
        for name in names:
            try:
                decision = self.tick_model(name)
            except (RegistryError, OSError) as exc:
                log.warning("rollout controller: model %r: %s", name, exc)
                continue
            except Exception:
                # one model's broken logs must not stop the others' rollouts
                log.exception("rollout controller: model %r: analysis failed", name)
                continue
            if decision is not None:
                out.append(decision)
        return out

    def tick_model(self, name: str) -> Decision | None:
        """One model's step (see :meth:`tick`); None when nothing was analysed."""
        route = self.registry.route(name)
        if not route.rollout:
            self.metrics.clear(name)
            return None
        if not is_analysed(route):
            if route.rollout.get("interval_s") is not None:
                actions.advance_rollout(self.registry, name, now=self._clock(), actor=self.actor)
            return None
        now = self._clock()
        key = (name, route.generation)
        last = self._analysed_at.get(key)
        plan = _plan_of(route)
        if last is not None and (now - last).total_seconds() < plan.analysis_interval_s:
            return None
        self._analysed_at = {k: v for k, v in self._analysed_at.items() if k[0] != name}
        self._analysed_at[key] = now
        decision = self.decide(name, route, now)
        self.last[name] = decision
        self.metrics.update(name, decision.phase, decision.weight, decision.verdicts)
        if decision.action != "wait":
            self._apply(name, route, decision)
        return decision

    def decide(self, name: str, route: Route, now: datetime) -> Decision:
        """Analyse ``route``'s rollout at ``now`` and choose the action (nothing is written)."""
        state = route.rollout or {}
        plan = _plan_of(route)
        version, phase = int(state["version"]), str(state["phase"])
        weight = route.canary.weight if route.canary is not None else 0.0
        if not _consistent(route):
            return Decision(model=name, version=version, phase=phase, weight=weight,
                            action="abort", reason="the route no longer routes the candidate "
                            "as its plan expects (changed by hand?)", verdicts=[],
                            elapsed_s=0.0, held=False)  # fmt: skip
        elapsed = (now - evidence.utc(state["step_started_at"])).total_seconds()
        failed_load = failed_versions(self.registry, name).get(version)
        if failed_load is not None:
            return Decision(model=name, version=version, phase=phase, weight=weight,
                            action="rollback", verdicts=[], elapsed_s=elapsed, held=False,
                            reason=f"a gateway could not load version {version}: "
                                   f"{failed_load}")  # fmt: skip
        try:
            found = self.evidence(name, route, now)
        except (evidence.LogReadError, OSError) as exc:
            # no evidence is never a pass: wait for the store to be readable, abort at the limit
            reason = f"log store unreadable: {exc}"
            action = "abort" if elapsed >= plan.max_wait_s else "wait"
            return Decision(model=name, version=version, phase=phase, weight=weight,
                            action=action, reason=reason, verdicts=[], elapsed_s=elapsed,
                            held=False)  # fmt: skip
        verdicts = analysis.analyse(found, plan)
        if phase == SHADOW:
            held = elapsed >= plan.shadow_s or found.candidate.requests >= plan.shadow_requests
            hold = f"{plan.shadow_s:g} s or {plan.shadow_requests} shadow requests"
        else:
            held = (
                elapsed >= plan.step_interval_s
                and found.candidate.canary_requests >= plan.step_min_requests
            )
            hold = f"{plan.step_interval_s:g} s and {plan.step_min_requests} canary requests"
        failed = [v for v in verdicts if v.outcome == FAIL]
        pending = [v for v in verdicts if v.outcome == INCONCLUSIVE]
        common: dict[str, Any] = {"model": name, "version": version, "phase": phase,
                                  "weight": weight, "verdicts": verdicts, "elapsed_s": elapsed,
                                  "held": held}  # fmt: skip
        if failed:
            reason = "; ".join(f"{v.check}: {v.reason}" for v in failed)
            return Decision(action="rollback", reason=reason, **common)
        if not pending and all(v.outcome in (PASS, SKIPPED) for v in verdicts) and held:
            if not any(v.outcome == PASS for v in verdicts):
                reason = "no check has evidence to pass on"
                return Decision(action="wait", reason=reason, **common)
            last_step = phase == CANARY and int(state["step"]) + 1 >= len(plan.steps)
            action = "promote" if last_step else "advance"
            return Decision(action=action, reason="every check passed", **common)
        if elapsed >= plan.max_wait_s:
            missing = "; ".join(f"{v.check}: {v.reason}" for v in pending) or f"held {hold}"
            reason = (
                f"inconclusive after {elapsed:.0f} s (max_wait_s {plan.max_wait_s:g}): {missing}"
            )
            return Decision(action="abort", reason=reason, **common)
        waiting = "; ".join(f"{v.check}: {v.reason}" for v in pending)
        reason = waiting or f"every check passed; holding for {hold}"
        return Decision(action="wait", reason=reason, **common)

    def evidence(self, name: str, route: Route, now: datetime) -> evidence.Evidence:
        """The log-store figures of ``route``'s rollout at ``now``."""
        state = route.rollout or {}
        plan = _plan_of(route)
        task = "classification"
        try:
            task = self.registry.get(name, int(state["version"])).output_schema.task
        except RegistryError:
            pass  # a version that vanished is caught by the route check; default is fine
        window = evidence.Window(
            rollout_since=evidence.utc(state["started_at"]),
            step_since=evidence.utc(state["step_started_at"]),
            until=now,
            matured_before=now - _seconds(plan.label_maturity_s),
            candidate=int(state["version"]),
            champion=int(state["champion"]),
            quantile=plan.latency_quantile,
            regression=task == "regression",
            rel_tol=plan.agreement_rel_tol,
        )
        return evidence.gather(self.logs, name, window)

    # -- transitions --------------------------------------------------------------------------
    def _apply(self, name: str, seen: Route, decision: Decision) -> Route | None:
        now = self._clock()
        state = dict(seen.rollout or {})
        plan = _plan_of(seen)
        kind, detail = _event(decision, state)

        def change(current: Route) -> Route:
            if current.generation != seen.generation:
                raise _Stale(name)
            if decision.action in ("rollback", "abort"):
                return _withdrawn(current, decision.version)
            if decision.action == "promote":
                new = routes.promoted(current, decision.version)
                return msgspec.structs.replace(new, rollout=None)
            return _next_step(current, plan, now)

        try:
            new = self.registry.update_route(
                name, change, kind=kind, detail=detail, actor=self.actor
            )
        except _Stale:
            return None  # another process acted on this route first
        if decision.action in ("rollback", "abort", "promote"):
            self.metrics.clear(name)
        log.info("rollout %s v%d: %s (%s)", name, decision.version, kind, decision.reason)
        return new

    def cancel(self, name: str, *, reason: str) -> Route | None:
        """Stop ``name``'s analysed rollout now (all traffic back on the champion), recording
        ``rollout.aborted`` with ``reason``; None when there was none to stop."""
        detail: dict[str, Any] = {"reason": reason}

        def change(route: Route) -> Route:
            if not is_analysed(route):
                raise _Stale(name)
            state = route.rollout or {}
            detail.update(version=state.get("version"), champion=state.get("champion"),
                          phase=state.get("phase"), step=state.get("step"))  # fmt: skip
            return _withdrawn(route, int(state["version"]))

        try:
            new = self.registry.update_route(
                name, change, kind=EVENT_ABORTED, detail=detail, actor=self.actor
            )
        except _Stale:
            return None
        self.metrics.clear(name)
        return new

    def run(self, stop: threading.Event, *, interval_s: float = 1.0) -> None:
        """Tick every ``interval_s`` seconds until ``stop`` is set (the trainer's loop, or
        ``mlgate rollout start --analysed --wait``)."""
        while not stop.is_set():
            self.tick()
            stop.wait(interval_s)

    # -- status -------------------------------------------------------------------------------
    def status(self, name: str) -> dict[str, Any]:
        """Plan, phase, step and each check's current figures (analysed now) of ``name``'s
        rollout; for a model with no analysed rollout, the route and the last outcome."""
        try:
            route = self.registry.route(name)
            self.registry.versions(name)
        except ModelNotFound as exc:
            raise RolloutRefused(str(exc)) from exc
        out: dict[str, Any] = {"model": name, "active": False,
                               "route": msgspec.to_builtins(route)}  # fmt: skip
        if is_analysed(route):
            state = route.rollout or {}
            now = self._clock()
            decision = self.decide(name, route, now)
            plan = _plan_of(route)
            out.update(
                active=True, version=int(state["version"]), champion=state.get("champion"),
                phase=state["phase"], step=int(state["step"]), steps=plan.steps,
                weight=decision.weight, started_at=state["started_at"],
                step_started_at=state["step_started_at"], plan=plan.to_dict(),
                decision=decision.to_dict(),
            )  # fmt: skip
        ended = [e for e in self.registry.events(name) if e.kind.startswith("rollout.")]
        out["events"] = [msgspec.to_builtins(e) for e in ended[-10:]]
        return out


def _seconds(s: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=s)


def _plan_of(route: Route) -> RolloutPlan:
    stored = (route.rollout or {}).get("plan") or {}
    return RolloutPlan.from_mapping(stored)


def _consistent(route: Route) -> bool:
    """The candidate is still routed as the plan's phase expects."""
    state = route.rollout or {}
    version = state.get("version")
    if route.champion != state.get("champion") or route.champion == version:
        return False
    if state.get("phase") == CANARY:
        return route.canary is not None and route.canary.version == version
    return route.canary is None and any(s.version == version for s in route.shadows)


def _started(route: Route, version: int, plan: RolloutPlan, now: datetime) -> Route:
    stamp = _iso(now)
    state: dict[str, Any] = {
        "analysed": True, "version": version, "champion": route.champion,
        "steps": list(plan.steps), "interval_s": None, "started_at": stamp,
        "step_started_at": stamp, "plan": plan.to_dict(),
    }  # fmt: skip
    shadows = [s for s in route.shadows if s.version != version]
    if plan.shadow_percent > 0:
        shadows.append(Shadow(version=version, percent=plan.shadow_percent))
    shadows.sort(key=lambda s: s.version)
    if plan.has_shadow:
        # a canary of this version set by hand goes back to shadow: the plan starts over
        state.update(phase=SHADOW, step=-1)
        return msgspec.structs.replace(route, canary=None, shadows=shadows, rollout=state)
    state.update(phase=CANARY, step=0)
    canary = Canary(version=version, weight=plan.steps[0])
    return msgspec.structs.replace(route, canary=canary, shadows=shadows, rollout=state)


def _next_step(route: Route, plan: RolloutPlan, now: datetime) -> Route:
    state = dict(route.rollout or {})
    step = int(state["step"]) + 1
    state.update(phase=CANARY, step=step, step_started_at=_iso(now))
    canary = Canary(version=int(state["version"]), weight=plan.steps[step])
    return msgspec.structs.replace(route, canary=canary, rollout=state)


def _withdrawn(route: Route, version: int) -> Route:
    """All traffic back on the champion: the candidate leaves the canary and shadow slots."""
    canary = route.canary if route.canary is not None and route.canary.version != version else None
    shadows = [s for s in route.shadows if s.version != version]
    return msgspec.structs.replace(route, canary=canary, shadows=shadows, rollout=None)


def _event(decision: Decision, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    verdicts = [v.to_dict() for v in decision.verdicts]
    detail: dict[str, Any] = {
        "version": decision.version, "champion": state.get("champion"),
        "phase": decision.phase, "step": state.get("step"), "weight": decision.weight,
        "reason": decision.reason, "elapsed_s": round(decision.elapsed_s, 3), "checks": verdicts,
    }  # fmt: skip
    if decision.action == "rollback":
        detail["failed"] = [v for v in verdicts if v["outcome"] == FAIL]
        return EVENT_ROLLED_BACK, detail
    if decision.action == "abort":
        detail["inconclusive"] = [v for v in verdicts if v["outcome"] == INCONCLUSIVE]
        return EVENT_ABORTED, detail
    if decision.action == "promote":
        return EVENT_PROMOTED, detail
    steps = state.get("steps") or []
    step = int(state.get("step", -1)) + 1
    detail["next_weight"] = steps[step] if step < len(steps) else None
    return (EVENT_CANARY if state.get("phase") == SHADOW else EVENT_STEP), detail
