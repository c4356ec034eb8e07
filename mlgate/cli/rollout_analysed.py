"""``mlgate rollout start --analysed`` and the analysis view of ``mlgate rollout status``.

The plan comes from ``[rollout]`` in ``mlgate.toml`` (and ``[rollout.models.<name>]``), then
``--steps`` / ``--interval`` / ``--plan KEY=VALUE`` flags. ``--wait`` drives the rollout in the
foreground (the trainer process does it otherwise) and shows each check's figures live.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mlgate.cli.common import console, err_console, fail, print_json, registry_call

if TYPE_CHECKING:
    from rich.console import RenderableType

    from mlgate.cli.common import OutputFormat
    from mlgate.settings import Locations
    from registry import Registry
    from trainer.promotion import RolloutController, RolloutPlan

EXIT_NOT_PROMOTED = 3  # --wait: the rollout ended rolled back or aborted
_OUTCOME_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "skipped": "dim"}


def build_plan(
    loc: Locations,
    name: str,
    *,
    steps: list[float] | None,
    interval: float | None,
    overrides: list[str],
) -> RolloutPlan:
    """The plan of ``mlgate.toml`` with the command line's changes; a bad value exits with
    the setting named."""
    from trainer.promotion import RolloutPlanError, parse_overrides, plan_from_config

    try:
        plan = plan_from_config(loc.config, name)
        changes = parse_overrides(overrides)
        if steps is not None:
            changes["steps"] = steps
        if interval is not None:
            changes["step_interval_s"] = interval
        return plan.replace(**changes) if changes else plan
    except RolloutPlanError as exc:
        fail(str(exc))


def controller(reg: Registry, loc: Locations, plan: RolloutPlan) -> RolloutController:
    from trainer.promotion import RolloutController

    return RolloutController(reg, loc.logs, plan, actor="cli")


def begin(ctl: RolloutController, name: str, version: int, plan: RolloutPlan) -> Any:
    from trainer.promotion import RolloutRefused

    try:
        return registry_call(lambda: ctl.begin(name, version, plan=plan))
    except RolloutRefused as exc:
        fail(str(exc))


def drive(ctl: RolloutController, name: str, fmt: OutputFormat, *, every_s: float = 1.0) -> None:
    """Tick the controller until ``name``'s rollout ends; exits non-zero unless promoted."""
    stop = threading.Event()
    live = fmt.value == "table" and console.is_terminal
    final: dict[str, Any] = {}
    with Live(console=console, auto_refresh=False, transient=False) if live else _NoLive() as view:
        while not stop.is_set():
            registry_call(ctl.tick)
            status = registry_call(lambda: ctl.status(name))
            if live:
                view.update(render(status), refresh=True)
            if not status["active"]:
                final = status
                break
            stop.wait(every_s)
    outcome = _outcome(final)
    if fmt.value == "json":
        print_json(final)
    else:
        if not live:
            for event in final.get("events", []):
                console.print(_event_line(event), highlight=False, soft_wrap=True)
        console.print(f"{name}: {outcome['kind']}: {outcome['reason']}", highlight=False)
    if outcome["kind"] != "rollout.promoted":
        err_console.print(f"rollout of {name} ended {outcome['kind']}", highlight=False)
        raise typer.Exit(EXIT_NOT_PROMOTED)


class _NoLive:
    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _outcome(status: dict[str, Any]) -> dict[str, str]:
    events: list[dict[str, Any]] = status.get("events") or []
    if not events:
        return {"kind": "none", "reason": ""}
    last = events[-1]
    return {"kind": str(last["kind"]), "reason": str(last.get("detail", {}).get("reason", ""))}


def _event_line(e: dict[str, Any]) -> str:
    d = e.get("detail", {})
    weight = f" at {d['weight']:g}%" if isinstance(d.get("weight"), int | float) else ""
    return f"{e['ts']}  {e['kind']}  v{d.get('version')} {d.get('phase', '')}{weight}: " + str(
        d.get("reason", "")
    )


def watch(ctl: RolloutController, name: str, *, every_s: float) -> None:
    """``status --watch``: the analysis, refreshed until the rollout ends (or Ctrl-C)."""
    with Live(console=console, auto_refresh=False) as view:
        try:
            while True:
                status = registry_call(lambda: ctl.status(name))
                view.update(render(status), refresh=True)
                if not status["active"]:
                    return
                time.sleep(every_s)  # a human-facing refresh period, not a wait for a condition
        except KeyboardInterrupt:
            return


def _fmt(x: Any, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def render(status: dict[str, Any]) -> RenderableType:
    """The analysis of one rollout: plan with the current step, hold, and each check."""
    name = status["model"]
    if not status["active"]:
        out = _outcome(status)
        return Text(f"{name}: no analysed rollout in progress (last: {out['kind']} "
                    f"{out['reason']})")  # fmt: skip
    decision = status["decision"]
    phases = ["shadow", *[f"{s:g}%" for s in status["steps"]], "champion"]
    current = 0 if status["phase"] == "shadow" else status["step"] + 1
    path = Text(f"{name} v{status['version']} vs champion v{status['champion']}: ")
    for i, label in enumerate(phases):
        style = "bold reverse" if i == current else "dim" if i < current else ""
        path.append(f"[{label}]" if i == current else label, style=style)
        if i < len(phases) - 1:
            path.append(" -> ")
    plan = status["plan"]
    hold = (
        f"holds {plan['shadow_s']:g} s or {plan['shadow_requests']} requests"
        if status["phase"] == "shadow"
        else f"holds {plan['step_interval_s']:g} s and {plan['step_min_requests']} canary requests"
    )
    elapsed = decision["elapsed_s"]
    head = Text(
        f"phase {status['phase']} for {elapsed:.0f} s ({hold}; aborted after "
        f"{plan['max_wait_s']:g} s inconclusive); next: {decision['action']} - "
        f"{decision['reason']}"
    )
    table = Table(title=f"checks at {datetime.now(UTC).isoformat(timespec='seconds')}")
    for col in ("check", "outcome", "n", "needed", "statistic", "p", "interval", "effect",
                "threshold"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("check", "outcome") else "right")
    for v in decision["verdicts"]:
        interval = v.get("interval")
        table.add_row(
            v["check"],
            Text(v["outcome"], style=_OUTCOME_STYLE.get(v["outcome"], "")),
            _fmt(v["n"]),
            _fmt(v.get("n_needed")),
            _fmt(v.get("statistic")),
            _fmt(v.get("p_value"), ".2g"),
            "-" if not interval else f"[{interval[0]:.3g}, {interval[1]:.3g}]",
            _fmt(v.get("effect")),
            _fmt(v.get("threshold")),
        )
    reasons = Text("\n".join(f"{v['check']}: {v['reason']}" for v in decision["verdicts"]))
    return Group(path, head, table, reasons)


def analysis_json(ctl: RolloutController, name: str) -> dict[str, Any]:
    return registry_call(lambda: ctl.status(name))
