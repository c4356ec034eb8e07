"""``mlgate trainer``: the long-running trainer, a retrain now, and the run history."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated, Any

import typer
from rich.table import Table

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
    metrics_host_option,
    metrics_port_option,
    print_json,
    registry_call,
    serve_metrics,
)

group = typer.Typer(
    name="trainer",
    help="Retrain models on drift and roll the better ones out.",
    no_args_is_help=True,
)

STAGES = ("data", "fit", "evaluate", "register", "rollout")
ENDED = ("promoted", "rolled back", "aborted", "not routed")


def attach(app: typer.Typer) -> None:
    app.add_typer(group, name="trainer")


def _context(home: str | None, registry: str | None, logs: str | None) -> Any:
    from registry import Registry
    from trainer import TrainerSettings, TrainerSettingsError, context
    from trainer.promotion import RolloutPlan, RolloutPlanError

    where = locations(home, registry, logs)
    try:
        settings = TrainerSettings.from_mapping(where.section("trainer"))
        plan = RolloutPlan.from_mapping(where.section("rollout"))
    except (TrainerSettingsError, RolloutPlanError) as exc:
        fail(str(exc))
    reg = registry_call(lambda: Registry(where.registry))
    from trainer.fit import lower_priority

    lower_priority(settings.nice)  # serving on this machine comes first
    return context(reg, logs=where.logs, settings=settings, plan=plan)


class _Stages:
    """The progress display: one line per stage as the run enters it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def stage(self, record: Any, stage: str) -> None:
        if not self.enabled:
            return
        step = STAGES.index(stage) + 1 if stage in STAGES else 0
        trail = " → ".join(f"[bold]{s}[/]" if s == stage else s for s in STAGES)
        err_console.print(
            f"[{step}/{len(STAGES)}] {trail}  ({time.monotonic() - self.started:.1f} s)",
            highlight=False,
        )


@group.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="One poll, then exit.")] = False,
    metrics_port: Annotated[
        int | None, metrics_port_option("trainer", " (mlgate_rollout_*)")
    ] = None,
    metrics_host: Annotated[str, metrics_host_option("trainer")] = "127.0.0.1",
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
) -> None:
    """Watch the registry for drift alerts (and the schedule); retrain, gate, roll out."""
    import logging

    from trainer import TrainerService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ctx = _context(home, registry, logs)
    service = TrainerService(ctx, progress=_Stages(enabled=False))
    if once:
        made = service.tick()
        print_json([_json(r, ctx.registry) for r in made])
        return
    if metrics_port is not None:
        serve_metrics(metrics_port, metrics_host, ctx.rollouts.collector_registry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(
        f"trainer: watching {ctx.registry.url} every {ctx.settings.poll_interval_s:g} s; "
        f"logs {ctx.logs_url}",
        highlight=False,
    )
    service.run(stop)


@group.command("retrain")
def retrain(
    name: Annotated[str, typer.Argument(help="Model name.", show_default=False)],
    wait: Annotated[
        bool, typer.Option("--wait", help="Also wait for the rollout to end (promoted or not).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fit and judge, register nothing.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds --wait waits for the rollout.", min=1)
    ] = 3600.0,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Retrain NAME now: data → fit → evaluate → register → rollout."""
    from registry import ModelNotFound
    from trainer import RunInProgress
    from trainer import retrain as run_retrain

    ctx = _context(home, registry, logs)
    try:
        record = run_retrain(
            name, ctx=ctx, dry_run=dry_run, progress=_Stages(enabled=fmt is OutputFormat.table)
        )
    except (ModelNotFound, RunInProgress) as exc:
        fail(str(exc))
    if wait and record.version is not None and (record.rollout or {}).get("started"):
        record.rollout = {
            **(record.rollout or {}),
            "outcome": _wait_rollout(
                ctx, name, record.version, timeout, show=fmt is OutputFormat.table
            ),
        }
    if fmt is OutputFormat.json:
        print_json(_json(record, ctx.registry))
    else:
        _print_run(record, ctx.registry)
    if record.status == "failed":
        raise typer.Exit(1)


def _wait_rollout(ctx: Any, name: str, version: int, timeout_s: float, *, show: bool) -> str:
    """Drive the rollout from here (the controller is safe to run beside a trainer service:
    each step is a compare-and-swap) until it ends or ``timeout_s`` passes."""
    from registry import RegistryError

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            decision = ctx.rollouts.tick_model(name)
        except RegistryError as exc:
            return f"stopped: {exc}"
        if decision is not None and decision.reason != last and show:
            last = decision.reason
            err_console.print(
                f"  rollout {decision.phase}: {decision.reason}", highlight=False, markup=False
            )
        outcome = _outcome(ctx.registry, name, version)
        if outcome in ENDED:
            return outcome
        time.sleep(1.0)
    return f"still {_outcome(ctx.registry, name, version)} after {timeout_s:g} s"


def _outcome(reg: Any, name: str, version: int | None) -> str:
    """Where a run's version stands now: promoted, canary N%, shadow, rolled back, …"""
    if version is None:
        return "-"
    route = reg.route(name)
    if route.champion == version:
        return "promoted"
    if route.canary is not None and route.canary.version == version:
        return f"canary {route.canary.weight:g}%"
    if any(s.version == version for s in route.shadows):
        return "shadow"
    for event in reversed(reg.events(name)):
        if event.detail.get("version") != version and event.detail.get("canary") != version:
            continue
        if event.kind in ("rollout.rolled_back", "rollback"):
            return "rolled back"
        if event.kind == "rollout.aborted":
            return "aborted"
    return "not routed"


def _json(record: Any, reg: Any) -> dict[str, Any]:
    out: dict[str, Any] = record.to_dict()
    out["version"] = record.version
    out["rollout_outcome"] = registry_call(lambda: _outcome(reg, record.model, record.version))
    return out


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_run(record: Any, reg: Any) -> None:
    colour = {
        "registered": "green",
        "passed": "green",
        "rejected": "yellow",
        "skipped": "yellow",
        "failed": "red",
    }.get(record.status, "white")
    console.print(
        f"run {record.run_id} of [bold]{record.model}[/]: [{colour}]{record.status}[/]"
        + (f" → version {record.version}" if record.version is not None else ""),
        highlight=False,
    )
    if record.reason:
        console.print(f"  {record.reason}", highlight=False, markup=False)
    if record.rows:
        rows = record.rows
        console.print(
            f"  rows: {rows.get('production', 0)} labelled production + "
            f"{rows.get('reference', 0)} reference; trained on {rows.get('train', 0)}, "
            f"holdout {rows.get('holdout', 0)} (gap {rows.get('gap', 0)})",
            highlight=False,
        )
    for c in record.candidates:
        figure = c.get(record.metric) if record.metric else None
        console.print(
            f"  candidate {c['name']} ({c['recipe']}): fit {c.get('fit_s', 0):.2f} s"
            + (f", {record.metric} {_num(figure)}" if figure is not None else "")
            + (f", error: {c['error']}" if c.get("error") else ""),
            highlight=False,
            markup=False,
        )
    if record.rollout:
        console.print(f"  rollout: {record.rollout}", highlight=False, markup=False)


@group.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Model name.", show_default=False)],
    home: HomeOption = None,
    registry: RegistryOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Every run of NAME: trigger, rows, metrics, decision, version, rollout outcome."""
    from registry import Registry
    from trainer import history as run_history

    where = locations(home, registry, None)
    reg = registry_call(lambda: Registry(where.registry))
    if name not in registry_call(reg.list):
        fail(f"model {name!r} is not registered in {reg.url}")
    records = registry_call(lambda: run_history(reg, name))
    if fmt is OutputFormat.json:
        print_json([_json(r, reg) for r in records])
        return
    if not records:
        console.print(f"no trainer runs for {name} yet")
        return
    t = Table(title=f"trainer runs of {name}")
    for col in (
        "run",
        "started",
        "trigger",
        "rows",
        "metric",
        "champion",
        "candidate",
        "decision",
        "version",
        "rollout",
    ):
        t.add_column(col, justify="right" if col in ("rows", "champion", "candidate") else "left")
    for r in records:
        gate = r.gate or {}
        t.add_row(
            r.run_id,
            r.started_at[:19],
            r.trigger.label,
            str(r.rows.get("train", "-")),
            r.metric or "-",
            _num(gate.get("champion")),
            _num(gate.get("candidate")),
            r.status,
            str(r.version) if r.version is not None else "-",
            _outcome(reg, name, r.version),
        )
    console.print(t)
