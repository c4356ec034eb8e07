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
    HomeOption,
    LogsOption,
    RegistryOption,
    console,
    fail,
    locations,
    print_json,
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
    from monitor import MonitorConfigError, from_locations
    from registry import RegistryError

    locs = locations(home=home, registry=registry, logs=logs)
    try:
        return from_locations(locs)
    except (MonitorConfigError, RegistryError, OSError) as exc:
        fail(str(exc))


@group.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between passes.", min=0.1)
    ] = None,
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
) -> None:
    """Read new log segments, compute drift per window, send alerts."""
    from monitor import MonitorService

    mon = _monitor(home, registry, logs)
    if once:
        try:
            result = mon.run_once()
        finally:
            mon.close()
        print_json(result.__dict__)
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(
        f"monitor: watching {mon.logs.url} every"
        f" {interval or mon.config.interval_seconds:g}s; state in {mon.store.path}"
    )
    MonitorService(mon, interval_s=interval).run(stop)


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
    from monitor.html import render_html
    from monitor.report import ReportError, build_report
    from monitor.store import MonitorStore, StoreBusy

    locs = locations(home=home, registry=registry, logs=logs)
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
        except ReportError as exc:
            fail(str(exc))
        if fmt is ReportFormat.html:
            if window is WindowChoice.all:
                fail("--format html shows one window; drop --window all")
            text = render_html(doc, store)
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


# short column titles for the figures of monitor.report.FEATURE_FIELDS
HEADERS = {
    "ks_pvalue": "ks p",
    "chi2_pvalue": "chi2 p",
    "null_rate": "null",
    "unseen_share": "unseen",
}


def _print_table(doc: dict[str, Any]) -> None:
    from monitor.report import FEATURE_FIELDS

    windows = doc.get("windows") or ([doc] if doc.get("window") else [])
    if not windows:
        console.print(doc.get("note") or "no complete window")
    for w in windows:
        info = w["window"]
        t = Table(
            title=f"{doc['model']} v{w.get('version')} {w.get('route')} window"
            f" {info['seq']} ({info['rows']} rows, {info['start']} → {info['end']})"
        )
        figures = [HEADERS.get(k, k) for k in FEATURE_FIELDS]
        for col in ("feature", "kind", *figures, "drifted"):
            t.add_column(col, justify="left" if col in ("feature", "kind") else "right")
        for f in w["features"]:
            t.add_row(
                f["name"],
                f["kind"],
                *(_num(f.get(k)) for k in FEATURE_FIELDS),
                "[bold red]yes[/]" if f["drifted"] else "no",
            )
        console.print(t)
        console.print(
            f"share drifted {_num(w.get('share_drifted'))}; dataset drift:"
            f" {'[bold red]yes[/]' if w.get('dataset_drift') else 'no'};"
            f" performance: {w.get('performance')}"
        )
    probs = doc.get("problems") or {}
    if probs.get("total"):
        console.print(f"problems: {probs['by_kind']}")
        for p in probs.get("recent", [])[-5:]:
            console.print(f"  {p['kind']}: {p['detail']}", highlight=False)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"
