"""``mlgate rollout``: canary, shadow, promote, rollback and status of a model's route."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.table import Table

from gateway.rollout_status import DEFAULT_WINDOW_S, collect_status, describe
from mlgate.cli.common import (
    FormatOption,
    HomeOption,
    LogsOption,
    OutputFormat,
    RegistryOption,
    console,
    err_console,
    fail,
    locations,
    open_registry,
    print_json,
    registry_call,
)
from mlgate.settings import Locations
from registry import Registry, rollout
from registry.errors import InvalidRoute
from registry.model import Route

T = TypeVar("T")

group = typer.Typer(
    name="rollout",
    help="Roll a model version out: canary, shadow, promote, rollback, status.",
    no_args_is_help=True,
)

VersionArg = Annotated[str, typer.Argument(help="Model version (an integer).", show_default=False)]
NameArg = Annotated[str, typer.Argument(help="Model name.", show_default=False)]


def attach(app: typer.Typer) -> None:
    app.add_typer(group, name="rollout")


# ------------------------------------------------------------------------------ helpers


def _version(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        fail(f"model '{name}': version must be an integer from 1, got {raw!r}")
    if value < 1:
        fail(f"model '{name}': version must be an integer from 1, got {raw!r}")
    return value


def _percent(name: str, what: str, raw: str) -> float:
    try:
        return rollout.check_percent(name, what, raw)
    except InvalidRoute as exc:
        fail(str(exc))


def _done(name: str, route: Route, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print_json({"model": name, "route": msgspec.to_builtins(route)})
    else:
        console.print(f"{name}: {describe(route)}", highlight=False)


def _act(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a registry action; its errors (InvalidRoute, RouteConflict …) become one line."""
    return registry_call(partial(fn, *args, **kwargs))


# ------------------------------------------------------------------------------ commands


@group.command("start")
def start(
    name: NameArg,
    version: VersionArg,
    weight: Annotated[
        str,
        typer.Option(
            "--weight", metavar="PCT", help="Percent of routing keys for the canary (0-100)."
        ),
    ] = "10",
    steps: Annotated[
        str | None,
        typer.Option("--steps", help="Plan of weights, e.g. 10,50,100 (overrides --weight)."),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            help="Seconds per plan step; then the next step, and a promote after the last.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Stay and drive the plan's steps until it ends.")
    ] = False,
    analysed: Annotated[
        bool,
        typer.Option(
            "--analysed",
            help="Shadow, then canary steps, each passed only on evidence from the log store "
            "(errors, p99 latency, agreement, labelled metric); rolled back on a failed check. "
            "Plan from the rollout table of mlgate.toml, --steps, --interval and --plan.",
        ),
    ] = False,
    plan_overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--plan",
            help="With --analysed: a plan setting KEY=VALUE (e.g. max_wait_s=120), repeatable.",
        ),
    ] = None,
    gateway_timeout: Annotated[
        float,
        typer.Option(
            "--gateway-timeout",
            help="Seconds to wait for live gateways to load the version; if one fails to, "
            "the rollout is withdrawn (0: do not wait).",
        ),
    ] = 10.0,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Start VERSION as a canary taking PCT% of routing keys (or the first of --steps);
    with --analysed, an analysed rollout (shadow, canary steps, champion)."""
    reg = open_registry(home, registry)
    v = _version(name, version)
    if analysed:
        loc = locations(home=home, registry=registry, logs=logs)
        _start_analysed(
            reg, loc, name, v, steps, interval, plan_overrides or [], wait, gateway_timeout, fmt
        )
        return
    if plan_overrides:
        fail(f"model '{name}': --plan applies to --analysed rollouts only")
    pct = _percent(name, "weight", weight)
    plan: list[float] | None = None
    if steps is not None:
        try:
            plan = rollout.check_steps(name, [s.strip() for s in steps.split(",") if s.strip()])
        except InvalidRoute as exc:
            fail(str(exc))
    if interval is not None and plan is None:
        fail(f"model '{name}': --interval needs --steps (a plan of weights), got none")
    route = _act(
        rollout.start_rollout,
        reg,
        name,
        v,
        weight=pct,
        steps=plan,
        interval_s=interval,
        actor="cli",
    )
    if gateway_timeout > 0:
        _confirm_loaded(reg, name, v, route, timeout_s=gateway_timeout)
    _done(name, route, fmt)
    if wait and plan is not None and interval is not None:
        _drive(reg, name, fmt)


def _start_analysed(
    reg: Registry,
    loc: Locations,
    name: str,
    version: int,
    steps: str | None,
    interval: float | None,
    overrides: list[str],
    wait: bool,
    gateway_timeout: float,
    fmt: OutputFormat,
) -> None:
    from mlgate.cli import rollout_analysed as analysed

    weights: list[float] | None = None
    if steps is not None:
        try:
            weights = rollout.check_steps(name, [s.strip() for s in steps.split(",") if s.strip()])
        except InvalidRoute as exc:
            fail(str(exc))
    plan = analysed.build_plan(loc, name, steps=weights, interval=interval, overrides=overrides)
    ctl = analysed.controller(reg, loc, plan)
    route = analysed.begin(ctl, name, version, plan)
    if gateway_timeout > 0:
        behind, failure = _act(
            rollout.await_gateways, reg, name, route.generation, version=version,
            timeout_s=gateway_timeout,
        )  # fmt: skip
        if failure is not None:
            ctl.cancel(name, reason=f"gateway could not load version {version}: {failure}")
            fail(
                f"model '{name}': version {version} failed to load on gateway {failure}; "
                "the rollout was withdrawn"
            )
    if not wait:
        _done(name, route, fmt)
        return
    analysed.drive(ctl, name, fmt)


def _confirm_loaded(
    reg: Registry, name: str, version: int, route: Route, *, timeout_s: float
) -> None:
    """Wait for the live gateways to apply ``route``; withdraw the canary if one of them
    could not load it, so that a version that cannot load never stays routed."""
    behind, failure = _act(
        rollout.await_gateways, reg, name, route.generation, version=version, timeout_s=timeout_s
    )
    if failure is not None:
        _act(rollout.withdraw_canary, reg, name, version, reason=failure, actor="cli")
        fail(
            f"model '{name}': version {version} failed to load on gateway {failure}; "
            "the rollout was withdrawn"
        )
    if behind:
        ids = ", ".join(f"{g.gateway_id} (generation {g.generation})" for g in behind)
        err_console.print(
            f"warning: not yet on generation {route.generation} after {timeout_s:g} s: {ids}",
            highlight=False,
            soft_wrap=True,
        )


def _drive(reg: Registry, name: str, fmt: OutputFormat) -> None:
    """Advance the plan in the foreground until it is promoted or taken over."""
    while True:
        route = reg.route(name)
        if not route.rollout:
            return
        stepped = _act(rollout.advance_rollout, reg, name, actor="cli")
        if stepped is not None:
            _done(name, stepped, fmt)
            continue
        time.sleep(0.5)  # a human-scale plan: poll the clock, not a test


# a negative PCT ("-5") must reach our range check, not be taken for an unknown option
@group.command("weight", context_settings={"ignore_unknown_options": True})
def weight_(
    name: NameArg,
    pct: Annotated[str, typer.Argument(help="Canary weight, 0 to 100.", show_default=False)],
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Set the canary's weight to PCT% of routing keys."""
    reg = open_registry(home, registry)
    route = _act(rollout.set_weight, reg, name, _percent(name, "weight", pct), actor="cli")
    _done(name, route, fmt)


@group.command("shadow")
def shadow(
    name: NameArg,
    version: Annotated[
        str | None, typer.Argument(help="Version to shadow (omit with --off for all).")
    ] = None,
    percent: Annotated[
        str,
        typer.Option(
            "--percent", metavar="PCT", help="Percent of requests copied to the shadow (0-100)."
        ),
    ] = "100",
    off: Annotated[bool, typer.Option("--off", help="Stop shadowing (VERSION, or all).")] = False,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Copy requests to VERSION after the answer is sent (or stop it with --off)."""
    reg = open_registry(home, registry)
    v = _version(name, version) if version is not None else None
    if off:
        route = _act(rollout.clear_shadow, reg, name, v, actor="cli")
    elif v is None:
        fail(f"model '{name}': shadow needs a VERSION (or --off), got none")
    else:
        pct = _percent(name, "shadow percent", percent)
        route = _act(rollout.set_shadow, reg, name, v, percent=pct, actor="cli")
    _done(name, route, fmt)


@group.command("promote")
def promote(
    name: NameArg,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Make the canary the champion now (the old champion is remembered)."""
    reg = open_registry(home, registry)
    _done(name, _act(rollout.promote, reg, name, actor="cli"), fmt)


@group.command("rollback")
def rollback(
    name: NameArg,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """All traffic back on the champion now (or the previous champion restored)."""
    reg = open_registry(home, registry)
    _done(name, _act(rollout.rollback, reg, name, actor="cli"), fmt)


@group.command("status")
def status(
    name: NameArg,
    window: Annotated[
        float, typer.Option("--window", help="Seconds of prediction log to summarize.")
    ] = DEFAULT_WINDOW_S,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Show an analysed rollout's plan, current step and each check's figures "
            "live, until it ends (Ctrl-C to leave).",
        ),
    ] = False,
    every: Annotated[
        float, typer.Option("--every", help="Seconds between refreshes of --watch.")
    ] = 2.0,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Route, generation, per-route traffic, errors, latency, agreement and live gateways."""
    if not window > 0:
        fail(f"--window must be a positive number of seconds, got {window!r}")
    if not every > 0:
        fail(f"--every must be a positive number of seconds, got {every!r}")
    from mlgate.cli import rollout_analysed as analysed

    loc = locations(home=home, registry=registry, logs=logs)
    reg = open_registry(home, loc.registry)
    report = _act(collect_status, reg, name, logs=loc.logs, window_s=window)
    plan = analysed.build_plan(loc, name, steps=None, interval=None, overrides=[])
    ctl = analysed.controller(reg, loc, plan)
    if watch:
        if fmt is OutputFormat.json:
            fail("--watch shows a live table; use it without --format json")
        analysed.watch(ctl, name, every_s=every)
        return
    report["analysis"] = analysed.analysis_json(ctl, name)
    if fmt is OutputFormat.json:
        print_json(report)
    else:
        _print_status(report)
        if report["analysis"]["active"]:
            console.print(analysed.render(report["analysis"]))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _print_status(report: dict[str, Any]) -> None:
    route, stats = report["route"], report["stats"]
    console.print(f"[bold]{report['model']}[/]: {report['summary']}", highlight=False)
    if route.get("rollout") and not route["rollout"].get("analysed"):
        plan = route["rollout"]
        console.print(
            f"plan: steps {plan.get('steps')} at step {int(plan.get('step', 0)) + 1}, "
            f"interval {plan.get('interval_s')} s",
            highlight=False,
        )
    table = Table(title=f"last {stats['window_s']:g} s ({stats['since']} to {stats['until']})")
    for col in ("route", "version", "requests", "error rate", "p50 ms", "p99 ms", "agreement"):
        table.add_column(col, justify="left" if col == "route" else "right")
    for r in stats["routes"]:
        agreement = _pct(r["agreement"]) + (f" of {r['compared']}" if r["compared"] else "")
        table.add_row(
            r["route"],
            str(r["version"]),
            str(r["requests"]),
            _pct(r["error_rate"]),
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            agreement,
        )
    console.print(table)
    for bad in stats.get("bad_segments", []):
        console.print(
            f"[yellow]segment left out:[/] {bad['path']}: {bad['reason']}",
            highlight=False,
            soft_wrap=True,
        )
    if report["gateways"]:
        gw = Table(title="live gateways")
        for col in ("gateway", "generation", "versions", "age s"):
            gw.add_column(col)
        for g in report["gateways"]:
            versions = ", ".join(f"v{v}:{s}" for v, s in sorted(g["versions"].items()))
            lag = "" if g["generation"] == route["generation"] else " (behind)"
            gw.add_row(g["gateway_id"], f"{g['generation']}{lag}", versions, f"{g['age_s']}")
        console.print(gw)
    else:
        console.print("no live gateway has reported for this model", highlight=False)
    for version, reason in report["failed"].items():
        console.print(f"[red]version {version} failed to load:[/] {reason}", highlight=False)
    if report["events"]:
        console.print("recent changes:", highlight=False)
    for e in report["events"]:
        detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items() if k != "plan")
        who = f" by {e['actor']}" if e.get("actor") else ""
        console.print(
            f"  {e['ts']}  generation {e['generation']}  {e['kind']}{who}: {detail}",
            highlight=False,
            soft_wrap=True,
        )
