"""From computed windows to alert events: drift detected / resolved, performance degraded.

An event fires on a change of state per (model, version, route), never on every window:
``model.drift.detected`` when a window turns drifting (dataset drift, prediction drift, or any
drifted feature with ``alert_on = "feature"``), ``model.drift.resolved`` when a later window
is clean again, and ``model.performance.degraded`` when DDM flags the error stream (labels
arrive late, so that one fires when the feedback is read, for the window of the rows).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from monitor.alerts.webhooks import iso
from monitor.compute.decide import FEATURE_FIELDS, thresholds
from monitor.config import (
    EVENT_DRIFT_DETECTED,
    EVENT_DRIFT_RESOLVED,
)

if TYPE_CHECKING:
    from monitor.compute.summaries import WindowSummary
    from monitor.config import MonitorConfig
    from monitor.store import MonitorStore


def is_drifting(summary: WindowSummary, config: MonitorConfig) -> bool:
    if summary.dataset_drift or summary.prediction_drift:
        return True
    return config.alert_on == "feature" and bool(summary.drifted_features)


def payload(summary: WindowSummary, config: MonitorConfig) -> dict[str, Any]:
    """The ``data`` of an alert: model, version, window, figures and thresholds."""
    return {
        "model": summary.model,
        "version": summary.version,
        "route": summary.route,
        "window": {
            "id": summary.window_id,
            "seq": summary.seq,
            "start": iso(summary.start_us / 1e6) if summary.start_us is not None else None,
            "end": iso(summary.end_us / 1e6) if summary.end_us is not None else None,
            "rows": summary.rows,
        },
        "share_drifted": summary.share_drifted,
        "dataset_drift": summary.dataset_drift,
        "drifted_features": summary.drifted_features,
        "features": [
            {k: f.get(k) for k in ("name", "kind", *FEATURE_FIELDS, "drifted")}
            for f in summary.features
        ],
        "prediction": summary.prediction,
        "thresholds": {
            **thresholds(config),
            "min_rows": config.min_rows,
            "consecutive": config.consecutive,
            "dataset_drift_share": config.dataset_drift_share,
        },
    }


def events_for(
    store: MonitorStore, summaries: list[WindowSummary], config: MonitorConfig
) -> list[tuple[str, dict[str, Any]]]:
    """State transitions of these windows (in order) as ``(event_type, data)``."""
    out: list[tuple[str, dict[str, Any]]] = []
    state: dict[tuple[str, int, str], tuple[bool, bool]] = {}
    for model, version, route, drifting, degraded in store.con.execute(
        "SELECT model, version, route, drifting, degraded FROM alert_state"
    ).fetchall():
        state[(model, int(version), route)] = (bool(drifting), bool(degraded))
    before = dict(state)
    for s in summaries:
        key = (s.model, s.version, s.route)
        drifting, degraded = state.get(key, (False, False))
        now_drifting = is_drifting(s, config)
        if now_drifting and not drifting:
            out.append((EVENT_DRIFT_DETECTED, payload(s, config)))
        elif drifting and not now_drifting:
            out.append((EVENT_DRIFT_RESOLVED, payload(s, config)))
        state[key] = (now_drifting, degraded)
    changed = [(*k, *v) for k, v in state.items() if before.get(k) != v]
    if changed:
        store.con.executemany("INSERT OR REPLACE INTO alert_state VALUES (?, ?, ?, ?, ?)", changed)
    return out


def degraded_event(
    store: MonitorStore,
    model: str,
    version: int,
    route: str,
    window_id: int,
    detections: int,
    config: MonitorConfig,
) -> dict[str, Any]:
    """Payload of ``model.performance.degraded`` for the window whose rows DDM flagged."""
    row = store.con.execute(
        "SELECT w.seq, w.start_us, w.end_us, w.rows, s.performance, s.share_drifted,"
        " s.dataset_drift, s.drifted_features FROM windows w"
        " LEFT JOIN summaries s USING (window_id) WHERE w.window_id = ?",
        [window_id],
    ).fetchone()
    seq, start_us, end_us, rows, perf, share, dataset, drifted = row or (None,) * 8
    return {
        "model": model,
        "version": version,
        "route": route,
        "window": {
            "id": window_id,
            "seq": seq,
            "start": iso(start_us / 1e6) if start_us is not None else None,
            "end": iso(end_us / 1e6) if end_us is not None else None,
            "rows": rows,
        },
        "detector": "ddm",
        "ddm_detections": detections,
        "performance": json.loads(perf) if perf else None,
        "share_drifted": share,
        "dataset_drift": dataset,
        "drifted_features": list(drifted or []),
        "thresholds": {"min_labels": config.min_labels},
    }
