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
from monitor.store.rows import AlertState

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
    state = store.alert_states()
    before = dict(state)
    for s in summaries:
        key = (s.model, s.version, s.route)
        was = state.get(key, AlertState(drifting=False, degraded=False))
        now_drifting = is_drifting(s, config)
        if now_drifting and not was.drifting:
            out.append((EVENT_DRIFT_DETECTED, payload(s, config)))
        elif was.drifting and not now_drifting:
            out.append((EVENT_DRIFT_RESOLVED, payload(s, config)))
        state[key] = was._replace(drifting=now_drifting)
    store.set_alert_states({k: v for k, v in state.items() if before.get(k) != v})
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
    w = store.degraded_window(window_id)
    return {
        "model": model,
        "version": version,
        "route": route,
        "window": {
            "id": window_id,
            "seq": w.seq,
            "start": iso(w.start_us / 1e6) if w.start_us is not None else None,
            "end": iso(w.end_us / 1e6) if w.end_us is not None else None,
            "rows": w.rows,
        },
        "detector": "ddm",
        "ddm_detections": detections,
        "performance": json.loads(w.performance) if w.performance else None,
        "share_drifted": w.share_drifted,
        "dataset_drift": w.dataset_drift,
        "drifted_features": w.drifted_features,
        "thresholds": {"min_labels": config.min_labels},
    }
