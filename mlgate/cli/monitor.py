"""``mlgate monitor``: run the drift monitor, and report on a model's windows."""

from __future__ import annotations

import json
import signal
import threading
from enum import StrEnum
from pathlib import Path
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
    fail,
    locations,
    metrics_host_option,
    metrics_port_option,
    print_json,
    serve_metrics,
)

group = typer.Typer(name="monitor", help="Drift and performance monitor.", no_args_is_help=True)


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    html = "html"


class WindowChoice(StrEnum):
    latest = "latest"
    all = "all"


def attach(app: typer.Typer) -> None:
    app.add_typer(group, name="monitor")


def _monitor(home: str | None, registry: str | None, logs: str | None) -> Any:
    """The monitor of these locations: its parts are made here, the monitor is handed them."""
    from monitor import Monitor, MonitorConfig, MonitorConfigError
    from registry import Registry, RegistryError

    locs = locations(home=home, registry=registry, logs=logs)
    try:
        config = MonitorConfig.from_section(locs.section("monitor"))
        return Monitor(Registry(locs.registry), locs.logs, db=locs.monitor_db, config=config)
    except (MonitorConfigError, RegistryError, OSError) as exc:
        fail(str(exc))


@group.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.1,
            help="Seconds between passes (default: interval_s of mlgate.toml's monitor table, 30).",
        ),
    ] = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            envvar="MLGATE_LEASE_TTL_S",
            min=1.0,
            help="Seconds the single-monitor lease lasts without renewal (a standby takes "
            "over after it).",
        ),
    ] = 30.0,
    metrics_port: Annotated[int | None, metrics_port_option("monitor")] = None,
    metrics_host: Annotated[str, metrics_host_option("monitor")] = "127.0.0.1",
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Read new log segments, compute drift per window, send alerts.

    Only the process holding the registry lease ``monitor`` works; a second one waits."""
    from mlgate.leader import LeaderLoop
    from registry import Lease, RegistryError

    mon = _monitor(home, registry, logs)
    lease = Lease(mon.registry, "monitor", ttl_s=lease_ttl)
    if once:
        try:
            _run_once(mon, lease, fmt)
        finally:
            mon.close()
        return
    _log_to_stderr()
    loop = LeaderLoop(
        lease, mon.run_once, interval_s=interval or mon.config.interval_s, role="monitor"
    )
    mon.collector_registry.register(_Collector(loop))
    if metrics_port is not None:
        try:
            serve_metrics(metrics_port, metrics_host, mon.collector_registry)
        except typer.Exit:
            mon.close()
            raise
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        console.print(
            f"monitor: watching {mon.logs.url} every {loop.interval_s:g}s; state in"
            f" {mon.store.path}; lease {lease.key} (ttl {lease.ttl_s:g}s) as {lease.holder}"
            + (
                f"; metrics on http://{metrics_host}:{metrics_port}/metrics" if metrics_port else ""
            ),
            highlight=False,
        )
        loop.run(stop)
    except RegistryError as exc:
        fail(str(exc))
    finally:
        mon.close()


def _run_once(mon: Any, lease: Any, fmt: OutputFormat) -> None:
    """One pass under the lease: refused while another monitor holds it."""
    from registry import RegistryError

    try:
        if not lease.acquire():
            fail(f"another monitor is running ({lease.describe()}); stop it or wait for expiry")
    except (RegistryError, OSError) as exc:
        fail(str(exc))
    try:
        result = mon.run_once()
    finally:
        lease.release()
    if fmt is OutputFormat.json:
        print_json(result.__dict__)
        return
    console.print(
        f"pass: {result.segments} segment(s), {result.rows} row(s), {result.windows} window(s)"
        f" closed, {result.problems} problem(s); alerts: {len(result.events)} raised,"
        f" {result.delivered} delivered, {result.pending_alerts} pending",
        highlight=False,
    )
    for event in result.events:
        console.print(f"  {event}", highlight=False)


class _Collector:
    """Adapter: the loop's ``collect`` as a Prometheus collector object."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def collect(self) -> Any:
        return self.loop.collect()


def _log_to_stderr() -> None:
    """Lease hand-overs and failed passes reach the process's stderr (its container log)."""
    import logging

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlgate").setLevel(logging.INFO)


@group.command("report")
def report(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int | None, typer.Option("--version", help="Model version.")] = None,
    route: Annotated[str | None, typer.Option("--route", help="champion, canary …")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="table, json or html.")] = (
        ReportFormat.table
    ),
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    window: Annotated[WindowChoice, typer.Option("--window", help="latest or all.")] = (
        WindowChoice.latest
    ),
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
) -> None:
    """Drift figures, decisions and bad-data counts of a model's latest (or every) window."""
    from monitor import MonitorConfig, MonitorConfigError
    from monitor.report.build import ReportError, build_report
    from monitor.report.html import render_html
    from monitor.report.verdicts import annotate
    from monitor.store import MonitorStore, StoreBusy

    locs = locations(home=home, registry=registry, logs=logs)
    try:
        config = MonitorConfig.from_section(locs.config.get("monitor", {}) or {})
    except MonitorConfigError as exc:
        fail(str(exc))
    from monitor.compute.decide import thresholds

    rules: dict[str, Any] = {"min_rows": config.min_rows, "consecutive": config.consecutive,
                             "thresholds": thresholds(config)}  # fmt: skip
    if not locs.monitor_db.exists():
        fail(f"{locs.monitor_db}: no monitor state yet; run `mlgate monitor run --once` first")
    _check_known(locs.registry, name, version, route)
    try:
        store = MonitorStore(locs.monitor_db, read_only=True, wait_s=10.0)
    except StoreBusy as exc:
        fail(str(exc))
    try:
        try:
            doc = build_report(store, name, version=version, route=route, window=window.value)
            annotate(doc, **rules)
        except ReportError as exc:
            fail(str(exc))
        if fmt is ReportFormat.html:
            if window is WindowChoice.all:
                fail("--format html shows the latest window and every window over time;"
                     " drop --window all")  # fmt: skip
            history = build_report(store, name, version=doc.get("version"), route=route,
                                   window="all")  # fmt: skip
            text = render_html(doc, store, history=annotate(history, **rules))
        elif fmt is ReportFormat.json:
            text = json.dumps(doc, indent=2, default=str)
        else:
            text = ""
    finally:
        store.close()
    if fmt is ReportFormat.table:
        _print_table(doc)
        return
    if out is not None:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        typer.echo(text)


def _check_known(registry_url: str, name: str, version: int | None, route: str | None) -> None:
    """Refuse a report on a model, version or route that cannot exist (one clear line)."""
    from registry import Registry, RegistryError
    from registry.logschema import ROUTES

    if route is not None and route not in ROUTES:
        fail(f"--route: expected one of {', '.join(ROUTES)}, got {route!r}")
    try:
        Registry(registry_url).get(name, version if version is not None else "latest")
    except RegistryError as exc:
        fail(str(exc))


def _print_table(doc: dict[str, Any]) -> None:
    windows = doc.get("windows") or ([doc] if doc.get("window") else [])
    if not windows:
        console.print(doc.get("note") or "no complete window")
    for w in windows:
        info = w["window"]
        t = Table(
            title=f"{doc['model']} v{w.get('version')} {w.get('route')} window"
            f" {info['seq']} ({info['rows']} rows, {info['start']} → {info['end']})"
        )
        for col in ("column", "kind", "verdict", "score", "decided by", *FIGURES, "why"):
            left = col in ("column", "kind", "verdict", "decided by", "why")
            t.add_column(col, justify="left" if left else "right",
                         overflow="fold" if col == "why" else "ellipsis")  # fmt: skip
        columns = [*w["features"], *((w.get("prediction") or {}).get("columns") or [])]
        for f in sorted(columns, key=lambda c: -(c.get("score") or 0.0)):
            verdict = f.get("verdict") or ("drifted" if f.get("drifted") else "stable")
            style = {"drifted": "bold red", "watch": "yellow"}.get(verdict, "green")
            t.add_row(
                str(f["name"]),
                str(f.get("kind")),
                f"[{style}]{verdict}[/]",
                _num(f.get("score")),
                str(f.get("decided_by") or "-"),
                *(_num(f.get(k)) for k in FIGURES),
                str(f.get("reason") or ""),
            )
        console.print(t)
        console.print(
            f"share drifted {_num(w.get('share_drifted'))}; dataset drift:"
            f" {'[bold red]yes[/]' if w.get('dataset_drift') else 'no'}",
            highlight=False,
        )
        console.print(_performance(w.get("performance")), highlight=False)
    probs = doc.get("problems") or {}
    if probs.get("total"):
        kinds = ", ".join(f"{k} {n}" for k, n in probs["by_kind"].items())
        console.print(f"problems: {kinds}", highlight=False)
        for p in probs.get("recent", [])[-5:]:
            console.print(f"  {p['kind']}: {p['detail']}", highlight=False)


# the figures the table shows beside the verdict (the JSON and HTML outputs have them all)
FIGURES = ("psi", "wasserstein", "js", "ks_pvalue", "chi2_pvalue", "null_rate", "unseen_share")


def _performance(perf: dict[str, Any] | None) -> str:
    """``performance: accuracy 0.94, f1 0.93 (412 labelled rows)`` rather than a dict."""
    if not perf:
        return "performance: no labels yet"
    labelled = perf.get("labelled_rows")
    figures, flags = [], []
    for k, v in perf.items():
        if isinstance(v, bool):
            flags.append(f"{k} {v}")
        elif k != "labelled_rows" and isinstance(v, int | float):
            figures.append(f"{k} {_num(v)}")
    text = ", ".join(figures) if figures else "no labelled metric"
    if labelled is not None:
        flags.insert(0, f"{labelled} labelled rows")
    extra = ", ".join(flags)
    return f"performance: {text}" + (f" ({extra})" if extra else "")


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"
