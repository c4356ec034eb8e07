"""The JSON document behind each page. The HTML pages render exactly these documents, and
``/api/...`` returns them, so a script sees the figures the page shows.

Sources: routes, versions, lineage, gateway reports and the audit trail from the registry;
request rate, errors, latency and agreement from the prediction log; drift, alerts and the
webhook outbox from the monitor's state. Trainer runs are the ``trainer.run.*`` events of the
audit trail, rollout analyses the ``rollout.*`` ones, and the monitor's alerts its ``model.*``
events and outbox messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from dashboard.logstats import champion_first
from dashboard.sources import MonitorUnavailable
from registry import ModelNotFound, VersionNotFound, gateway_states
from registry.gateways import failures

if TYPE_CHECKING:
    from types import ModuleType

    from dashboard.sources import Sources
    from registry import Event, ModelVersion, Route


def _overview() -> ModuleType:
    """The monitor's report queries, imported on first use: the dashboard is mounted in every
    gateway worker, and importing the monitor's stages (numba, DuckDB) there cost ~0.5 s of
    each worker's start for pages nobody may open."""
    from monitor.report import overview

    return overview


class BadQuery(ValueError):
    """A page or API parameter is not one we can use (becomes a 400)."""


RUN_PREFIX = "trainer.run"
ROLLOUT_PREFIX = "rollout."
ALERT_PREFIX = "model."
# how a rollout ends (``trainer.promotion.controller``'s events)
ROLLOUT_ENDS = ("rollout.promoted", "rollout.rolled_back", "rollout.aborted")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _event(e: Event) -> dict[str, Any]:
    return msgspec.to_builtins(e)  # type: ignore[no-any-return]


def _route_doc(route: Route) -> dict[str, Any]:
    return msgspec.to_builtins(route)  # type: ignore[no-any-return]


def is_run(e: Event) -> bool:
    return e.kind.startswith(RUN_PREFIX)


def is_alert(e: Event) -> bool:
    return e.kind.startswith(ALERT_PREFIX)


def run_records(sources: Sources, name: str) -> list[dict[str, Any]] | None:
    """The trainer's run records of ``name``, oldest first (None without a trainer)."""
    try:
        from trainer import history
    except ImportError:
        return None
    out = []
    for r in history(sources.registry, name):
        doc: dict[str, Any] = msgspec.to_builtins(r)
        doc["kind"] = f"trainer.run.{r.status}"
        doc["ts"] = r.finished_at or r.started_at
        doc["decision"] = (r.gate or {}).get("decision") or r.reason
        out.append(doc)
    return out


def _runs(sources: Sources, name: str, events: list[Event]) -> list[dict[str, Any]]:
    """Runs from the trainer's records, else from its ``trainer.run.*`` events."""
    records = run_records(sources, name)
    if records:
        return records
    return [_event(e) for e in events if is_run(e)]


def _monitor_or_none(sources: Sources, key: tuple[Any, ...], read: Any) -> tuple[Any, str | None]:
    try:
        return sources.read_monitor(key, read), None
    except MonitorUnavailable as exc:
        return None, str(exc)


# ----------------------------------------------------------------------------------- models


def _gateways(sources: Sources, name: str, route: Route) -> dict[str, Any]:
    states = gateway_states(sources.registry, name, max_age_s=sources.settings.gateway_max_age_s)
    behind = [g.gateway_id for g in states if g.generation != route.generation]
    failed = {str(v): reason for v, reason in failures(states).items()}
    return {
        "live": len(states),
        "behind": behind,
        # None: no live gateway reported, so nothing to say either way
        "all_loaded": (not behind and not failed) if states else None,
        "failed": failed,
        "states": [{**msgspec.to_builtins(g), "age_s": round(g.age_s(), 1)} for g in states],
    }


def models_document(sources: Sources) -> dict[str, Any]:
    """One row per model: route, traffic per route, drift, last alert, last run, gateways."""
    settings = sources.settings
    reg = sources.registry
    names = reg.list()
    figures = sources.cache.get(
        ("figures", None, settings.traffic_window_s),
        lambda: sources.logs.route_figures(window_s=settings.traffic_window_s),
    )
    # one monitor read per page: opening the DuckDB file is most of a read's cost
    latest, note = _monitor_or_none(
        sources,
        ("latest",),
        lambda s: (_overview().latest_windows(s), _overview().latest_alerts(s)),
    )
    drift, alerts = latest or (None, None)
    rows = []
    for name in names:
        route = reg.route(name)
        events = reg.events(name)
        runs = _runs(sources, name, events)
        alert_events = [e for e in events if is_alert(e)]
        last_alert = (alerts or {}).get(name)
        if alert_events and (last_alert is None or alert_events[-1].ts > str(last_alert["at"])):
            last_alert = {"event_type": alert_events[-1].kind, "at": alert_events[-1].ts}
        rows.append(
            {
                "name": name,
                "route": _route_doc(route),
                "routes": [f.to_dict() for f in champion_first(figures.get(name, []))],
                "drift": (drift or {}).get(name),
                "last_alert": last_alert,
                "last_run": runs[-1] if runs else None,
                "gateways": _gateways(sources, name, route),
            }
        )
    return {
        "at": _now(),
        "window_s": settings.traffic_window_s,
        "monitor_note": note,
        "models": rows,
    }


# ------------------------------------------------------------------------------------ model


def _version_doc(mv: ModelVersion, route: Route) -> dict[str, Any]:
    roles = []
    if route.champion == mv.version:
        roles.append("champion")
    if route.canary is not None and route.canary.version == mv.version:
        roles.append(f"canary {route.canary.weight:g}%")
    roles += [f"shadow {s.percent:g}%" for s in route.shadows if s.version == mv.version]
    if route.previous_champion == mv.version:
        roles.append("previous champion")
    return {
        "version": mv.version,
        "created_at": mv.created_at,
        "flavor": mv.flavor,
        "features": len(mv.input_schema.features),
        "task": mv.output_schema.task,
        "tags": dict(mv.tags),
        "lineage": msgspec.to_builtins(mv.lineage),
        "roles": roles,
    }


def _started(e: Event) -> bool:
    """A rollout's start: the trainer's ``rollout.started`` or the CLI's ``rollout start``."""
    cli = e.kind == "rollout" and e.detail.get("action") == "start"
    return e.kind == "rollout.started" or cli


def _rollout_doc(route: Route, events: list[Event]) -> dict[str, Any] | None:
    """The rollout in progress (its plan, current step and the analyses' figures), else the
    last one that ended, with how it ended (``outcome``) and its last checks."""
    active = route.canary is not None or bool(route.rollout)
    start_event = next((e for e in reversed(events) if _started(e)), None)
    if not active and start_event is None:
        return None
    plan = dict(route.rollout or {}) if active else {}
    since = plan.get("started_at") or (start_event.ts if start_event else "")
    analyses = [
        _event(e) for e in events if e.kind.startswith(ROLLOUT_PREFIX) and e.ts >= str(since)
    ]
    steps = plan.get("steps")
    step = plan.get("step")
    phase = plan.get("phase")
    label = None
    if phase == "shadow":
        label = "shadow phase"
    elif steps and step is not None:
        label = f"step {int(step) + 1} of {len(steps)}"
    outcome = None
    if not active:
        ends = [a["kind"] for a in analyses if a["kind"] in ROLLOUT_ENDS]
        outcome = ends[-1] if ends else "ended"
    return {
        "active": active,
        "outcome": outcome,
        "canary": msgspec.to_builtins(route.canary) if route.canary else None,
        "plan": plan or None,
        "steps": steps,
        "step": step,
        "phase": phase,
        "step_label": label,
        "started_at": since or None,
        "analyses": analyses[-50:],
        "checks": _latest_checks(analyses),
    }


def _latest_checks(analyses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks of the newest analysis that has any (whatever the analysis names them)."""
    for e in reversed(analyses):
        checks = e.get("detail", {}).get("checks")
        if isinstance(checks, list) and checks:
            return [c if isinstance(c, dict) else {"check": c} for c in checks]
        if isinstance(checks, dict) and checks:
            return [
                {"name": k, **(v if isinstance(v, dict) else {"value": v})}
                for k, v in checks.items()
            ]
    return []


def model_document(sources: Sources, name: str) -> dict[str, Any]:
    """A model: versions with lineage, rollout, per-route traffic over time, agreement."""
    reg = sources.registry
    settings = sources.settings
    versions = reg.versions(name)
    if not versions:
        raise ModelNotFound(f"model '{name}' is not registered")
    route = reg.route(name)
    events = reg.events(name)
    figures = sources.cache.get(
        ("figures", name, settings.traffic_window_s),
        lambda: sources.logs.route_figures(window_s=settings.traffic_window_s, model=name),
    ).get(name, [])
    series = sources.cache.get(
        ("series", name),
        lambda: sources.logs.series(
            name, window_s=settings.series_window_s, buckets=settings.series_buckets
        ),
    )
    champion = next((v for v in versions if v.version == route.champion), versions[-1])
    agreement = sources.cache.get(
        ("agreement", name, route.champion),
        lambda: sources.logs.agreement(
            name,
            champion=route.champion,
            numeric=champion.output_schema.task != "classification",
            window_s=settings.series_window_s,
            buckets=settings.series_buckets,
        ),
    )
    return {
        "at": _now(),
        "name": name,
        "route": _route_doc(route),
        "versions": [_version_doc(mv, route) for mv in reversed(versions)],
        "rollout": _rollout_doc(route, events),
        "window_s": settings.traffic_window_s,
        "routes": [f.to_dict() for f in champion_first(figures)],
        "series": series,
        "agreement": agreement,
        "gateways": _gateways(sources, name, route),
        "runs": _runs(sources, name, events)[-20:][::-1],
        "events": [_event(e) for e in events][-20:][::-1],
    }


def diff_document(sources: Sources, name: str, a: int, b: int) -> dict[str, Any]:
    """Metrics, parameters and lineage of versions ``a`` and ``b`` side by side."""
    reg = sources.registry
    try:
        va, vb = reg.get(name, a), reg.get(name, b)
    except VersionNotFound as exc:
        raise BadQuery(str(exc)) from exc
    la, lb = va.lineage, vb.lineage
    metrics = []
    for key in sorted(set(la.metrics) | set(lb.metrics)):
        x, y = la.metrics.get(key), lb.metrics.get(key)
        delta = y - x if isinstance(x, int | float) and isinstance(y, int | float) else None
        metrics.append({"name": key, "a": x, "b": y, "delta": delta})
    params = []
    for key in sorted(set(la.params) | set(lb.params)):
        x, y = la.params.get(key), lb.params.get(key)
        params.append({"name": key, "a": x, "b": y, "changed": x != y})
    fields = ("data_fingerprint", "rows", "code_version", "parent_version", "trigger")
    lineage = [
        {
            "name": f,
            "a": getattr(la, f),
            "b": getattr(lb, f),
            "changed": getattr(la, f) != getattr(lb, f),
        }
        for f in fields
    ]
    return {"name": name, "a": a, "b": b, "metrics": metrics, "params": params, "lineage": lineage}


# ------------------------------------------------------------------------------------ drift


def _drift_reads(
    store: Any,
    name: str,
    *,
    version: int | None,
    route: str | None,
    metric: str,
    window: int | None,
    champion: int | None,
    previous: int | None,
    limit: int,
    max_events: int,
) -> dict[str, Any]:
    """Everything the drift page needs from the monitor, on one connection (opening the
    DuckDB file is most of a read's cost)."""
    keys = _overview().window_keys(store, name)
    out: dict[str, Any] = {"keys": keys, "grid": None}
    if not keys:
        return out
    if version is None:
        version = default_version(keys, champion, previous)
    if route is None:
        routes = [k["route"] for k in keys if k["version"] == version]
        route = "champion" if "champion" in routes else (routes[0] if routes else "champion")
    assert version is not None and route is not None
    grid = _overview().drift_grid(store, name, version=version, route=route, metric=metric,
                               limit=limit)  # fmt: skip
    ids: list[int] = [w["id"] for w in grid["windows"]]
    chosen = window if window is not None else (ids[-1] if ids else None)
    out.update(version=version, route=route, grid=grid, ids=ids, window=chosen)
    out["distributions"] = (
        _overview().window_distributions(store, chosen)
        if chosen is not None and chosen in ids
        else {}
    )
    out["alerts"] = [
        a for a in _overview().alert_messages(store, limit=max_events) if a["model"] == name
    ]
    return out


MIN_TREND_WINDOWS = 3
CHART_METRICS = ("accuracy", "f1", "roc_auc", "mae", "rmse")


def default_version(keys: list[dict[str, Any]], champion: int | None, previous: int | None) -> int:
    """The version the drift page opens on: the champion's, unless it was just promoted and
    has fewer than ``MIN_TREND_WINDOWS`` champion windows while the previous champion has
    more (the drift that led to the promotion is in those).

    >>> keys = [{"version": 2, "route": "champion", "windows": 1},
    ...         {"version": 1, "route": "champion", "windows": 17}]
    >>> default_version(keys, 2, 1), default_version(keys, 2, None), default_version(keys, 7, 1)
    (1, 2, 2)
    """
    windows = {k["version"]: k["windows"] for k in keys if k["route"] == "champion"}
    if champion in windows or any(k["version"] == champion for k in keys):
        if (
            previous is not None
            and windows.get(champion, 0) < MIN_TREND_WINDOWS
            and windows.get(previous, 0) > windows.get(champion, 0)
        ):
            return previous
        return champion  # type: ignore[return-value]
    return int(keys[0]["version"])


def check_metric(metric: str) -> None:
    """The heat map's statistic must be one the monitor stores with a threshold."""
    if metric not in _overview().GRID_METRICS:
        raise BadQuery(
            f"metric: expected one of {', '.join(_overview().GRID_METRICS)}, got {metric!r}"
        )


def drift_document(
    sources: Sources,
    name: str,
    *,
    version: int | None = None,
    route: str | None = None,
    metric: str = "psi",
    window: int | None = None,
    feature: str | None = None,
    limit: int | None = None,
    before: int | None = None,
) -> dict[str, Any]:
    """Window x feature grid (``limit`` windows in full, before window ``before``, and all
    of them merged into the heat map's columns), one window's distributions, prediction
    drift, the labelled metric over time, and alerts and trainer runs on the same time axis."""
    reg = sources.registry
    most = sources.settings.max_windows
    if limit is not None and not 1 <= limit <= most:
        raise BadQuery(f"limit: expected 1 to {most} windows, got {limit}")
    if name not in reg.list():
        reg.route(name)  # InvalidName for a malformed name
        raise ModelNotFound(f"model '{name}' is not registered")
    check_metric(metric)
    events = reg.events(name)
    markers = [
        {"kind": "run" if is_run(e) else "alert", "type": e.kind, "at": e.ts, "version": e.version}
        for e in events
        if is_run(e) or is_alert(e)
    ]
    doc: dict[str, Any] = {"at": _now(), "name": name, "metric": metric, "markers": markers}
    current = reg.route(name)
    champion, previous = current.champion, current.previous_champion

    def read(store: Any) -> dict[str, Any]:
        return _drift_reads(
            store, name, version=version, route=route, metric=metric, window=window,
            champion=champion, previous=previous, limit=most,
            max_events=sources.settings.max_events,
        )  # fmt: skip

    found, note = _monitor_or_none(
        sources, ("drift", name, version, route, metric, most, window, champion, previous), read
    )
    doc["keys"] = (found or {}).get("keys") or []
    if not found or found["grid"] is None:
        doc.update(grid=None, window=None, distributions={}, note=note or "no computed window yet")
        return doc
    version, route, grid, ids = found["version"], found["route"], found["grid"], found["ids"]
    if window is not None and window not in ids:
        raise BadQuery(
            f"window: {window} is not a window of model '{name}' version {version} "
            f"route {route} (known: the last {len(ids)})"
        )
    chosen = found["window"]
    dists = found["distributions"]
    seen = set()
    for a in found["alerts"]:
        marker = {"kind": "alert", "type": a["event_type"], "at": a["created_at"],
                  "version": a["version"]}  # fmt: skip
        if (a["event_type"], a["created_at"], a["version"]) not in seen:  # one per endpoint
            seen.add((a["event_type"], a["created_at"], a["version"]))
            markers.append(marker)
    names = [f["name"] for f in grid["features"]]
    if feature is not None and feature not in dists and feature not in names:
        raise BadQuery(f"feature: model '{name}' has no column {feature!r}")
    if feature is None:
        drifted = [f["name"] for f in grid["features"] if f["drifted"] and f["drifted"][-1]]
        feature = drifted[0] if drifted else (names[0] if names else None)
    settings = sources.settings
    doc.update(
        version=version,
        route=route,
        grid=grid_page(grid, limit=limit or settings.page_windows, before=before),
        overview=grid_overview(grid, columns=settings.heat_columns),
        series=window_series(grid["windows"]),
        window=chosen,
        window_info=next((w for w in grid["windows"] if w["id"] == chosen), None),
        feature=feature,
        distributions=dists,
        note=None,
    )
    return doc


def grid_page(grid: dict[str, Any], *, limit: int, before: int | None) -> dict[str, Any]:
    """The ``limit`` windows of ``grid`` before window ``before`` (the newest when None),
    in full, with ``next_before`` to ask for the page before it (None on the oldest).

    >>> g = {"windows": [{"id": i} for i in (4, 7, 9)],
    ...      "features": [{"name": "x", "values": [1, 2, 3], "drifted": [0, 0, 1]}]}
    >>> p = grid_page(g, limit=2, before=None)
    >>> [w["id"] for w in p["windows"]], p["features"][0]["values"], p["next_before"]
    ([7, 9], [2, 3], 7)
    >>> grid_page(g, limit=2, before=7)["next_before"] is None
    True
    """
    ids = [w["id"] for w in grid["windows"]]
    if before is None:
        end = len(ids)
    elif before in ids:
        end = ids.index(before)
    else:
        raise BadQuery(f"before: {before} is not one of the {len(ids)} windows shown")
    start = max(0, end - limit)
    return {
        **grid,
        "windows": grid["windows"][start:end],
        "features": [
            {**f, "values": f["values"][start:end], "drifted": f["drifted"][start:end]}
            for f in grid["features"]
        ],
        "total_windows": len(ids),
        "limit": limit,
        "before": before,
        "next_before": ids[start] if start > 0 else None,
    }


def grid_overview(grid: dict[str, Any], *, columns: int) -> dict[str, Any]:
    """Every window of ``grid`` at a glance: neighbouring windows merged into at most
    ``columns`` columns, each with the worst figure of its windows (the highest, or the
    lowest for p-values) and drifted when any of them is.

    >>> g = {"drift_when": "above", "windows": [
    ...     {"id": i, "seq": i, "start": None, "end": None, "end_s": float(i), "rows": 1,
    ...      "share_drifted": 0.1 * i, "dataset_drift": i == 3} for i in range(4)],
    ...     "features": [{"name": "x", "kind": "numeric", "threshold": 0.2,
    ...                   "values": [0.1, 0.3, None, 0.2], "drifted": [0, 1, 0, 0]}]}
    >>> o = grid_overview(g, columns=2)
    >>> o["size"], [c["id"] for c in o["windows"]], o["features"][0]["values"]
    (2, [1, 3], [0.3, 0.2])
    >>> o["features"][0]["drifted"], [c["dataset_drift"] for c in o["windows"]]
    ([True, False], [False, True])
    """
    windows = grid["windows"]
    size = max(1, -(-len(windows) // max(columns, 1)))
    low = grid.get("drift_when") == "below"
    merged = []
    for i in range(0, len(windows), size):
        group = windows[i : i + size]
        shares = [w["share_drifted"] for w in group if w["share_drifted"] is not None]
        merged.append(
            {
                "id": group[-1]["id"],  # a click opens the group's newest window
                "first_id": group[0]["id"],
                "seq": group[-1]["seq"],
                "first_seq": group[0]["seq"],
                "start": group[0]["start"],
                "end": group[-1]["end"],
                "end_s": group[-1]["end_s"],
                "windows": len(group),
                "rows": sum(w["rows"] for w in group),
                "share_drifted": max(shares) if shares else None,
                "dataset_drift": any(w["dataset_drift"] for w in group),
            }
        )
    features = []
    for f in grid["features"]:
        values, drifted = [], []
        for i in range(0, len(windows), size):
            chunk = [v for v in f["values"][i : i + size] if v is not None]
            values.append((min(chunk) if low else max(chunk)) if chunk else None)
            drifted.append(any(f["drifted"][i : i + size]))
        features.append({**f, "values": values, "drifted": drifted})
    return {"drift_when": grid.get("drift_when"), "size": size, "windows": merged,
            "features": features}  # fmt: skip


def window_series(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per window, as arrays over time: share of drifted features, prediction drift and
    the labelled metrics (the drift page's line charts)."""
    found = {k for w in windows for k, v in (w["performance"] or {}).items()
             if isinstance(v, int | float) and not isinstance(v, bool)
             and k != "labelled_rows"}  # fmt: skip
    # the bounded metrics first: the chart shows three, and a log loss of 7 would flatten
    # an accuracy falling from 1.0 to 0.5
    metrics = sorted(found, key=lambda k: (k not in CHART_METRICS, CHART_METRICS.index(k)
                                           if k in CHART_METRICS else 0, k))  # fmt: skip
    return {
        "end_s": [w["end_s"] for w in windows],
        "share_drifted": [w["share_drifted"] for w in windows],
        "share_threshold": next(
            (w["share_threshold"] for w in windows if w["share_threshold"] is not None), None
        ),
        "prediction_psi": [w["prediction_psi"] for w in windows],
        "performance": {k: [(w["performance"] or {}).get(k) for w in windows] for k in metrics},
    }


# ----------------------------------------------------------------------------------- events


def events_document(
    sources: Sources, *, model: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """The audit trail (newest first) and the alert outbox, filtered by model and type."""
    reg = sources.registry
    limit = sources.settings.max_events
    names = reg.list()
    if model is not None and model not in names:
        raise BadQuery(f"model: '{model}' is not registered (known: {', '.join(names) or 'none'})")
    trail: list[dict[str, Any]] = []
    kinds: set[str] = set()
    for name in [model] if model else names:
        for e in reg.events(name):
            kinds.add(e.kind)
            if kind is None or e.kind == kind or e.kind.startswith(kind + "."):
                trail.append(_event(e))
    trail.sort(key=lambda e: e["ts"], reverse=True)
    both, note = _monitor_or_none(
        sources,
        ("outbox", limit),
        lambda s: (_overview().alert_messages(s, limit=limit), _overview().endpoint_summary(s)),
    )
    messages, endpoints = both or (None, None)
    outbox = [
        m
        for m in messages or []
        if (model is None or m["model"] == model)
        and (kind is None or m["event_type"] == kind or m["event_type"].startswith(kind + "."))
    ]
    return {
        "at": _now(),
        "model": model,
        "kind": kind,
        "models": names,
        "kinds": sorted(kinds | {m["event_type"] for m in messages or []}),
        "events": trail[:limit],
        "total": len(trail),
        "outbox": outbox,
        "endpoints": endpoints or [],
        "monitor_note": note,
    }
