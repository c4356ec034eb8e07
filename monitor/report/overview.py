"""Bulk reads of computed windows for dashboards: one query per page, not one per window.

``build_report`` answers one window at a time (the CLI's report); a dashboard shows every
model's latest window at once and a window x feature grid over hundreds of windows, so these
read the same tables in a few set-wise queries. Read-only: nothing here writes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from monitor.alerts.webhooks import iso
from monitor.report.build import distributions

if TYPE_CHECKING:
    from monitor.store import MonitorStore
    from monitor.store.rows import GridWindow

# statistics with a threshold column in ``results`` (``<name>_threshold``)
GRID_METRICS = ("psi", "wasserstein", "js", "null_rate", "unseen_share", "ks_pvalue", "chi2_pvalue")
# p-values drift when *below* their threshold; the others when above
LOW_IS_DRIFT = frozenset({"ks_pvalue", "chi2_pvalue"})


def _time(us: Any) -> str | None:
    return iso(us / 1e6) if us is not None else None


def latest_windows(store: MonitorStore) -> dict[str, dict[str, Any]]:
    """Per model, its latest computed window (a champion window when there is one)."""
    out: dict[str, dict[str, Any]] = {}
    for (
        model,
        wid,
        version,
        route,
        start,
        end,
        n,
        nf,
        nd,
        share,
        dataset,
        names,
    ) in store.latest_summaries():
        out[str(model)] = {
            "window_id": int(wid),
            "version": int(version),
            "route": route,
            "start": _time(start),
            "end": _time(end),
            "rows": int(n or 0),
            "n_features": int(nf or 0),
            "n_drifted": int(nd or 0),
            "share_drifted": share,
            "dataset_drift": bool(dataset),
            "drifted_features": list(names or []),
        }
    return out


def window_keys(store: MonitorStore, model: str) -> list[dict[str, Any]]:
    """The (version, route) pairs with computed windows, and how many, newest version first."""
    return [{"version": v, "route": r, "windows": n} for v, r, n in store.summary_streams(model)]


def drift_grid(
    store: MonitorStore,
    model: str,
    *,
    version: int,
    route: str,
    metric: str = "psi",
    limit: int = 1000,
) -> dict[str, Any]:
    """The last ``limit`` windows of one version and route: per window its summary (share
    drifted, prediction drift, labelled metrics) and per feature ``metric`` with its
    threshold and the drift decision, as ``values[feature][window]``."""
    if metric not in GRID_METRICS:
        raise ValueError(f"metric: expected one of {', '.join(GRID_METRICS)}, got {metric!r}")
    windows = store.last_summaries(model, version, route, limit)
    ids = [w.window_id for w in windows]
    column = {wid: i for i, wid in enumerate(ids)}
    features: list[str] = []
    values: dict[str, list[float | None]] = {}
    drifted: dict[str, list[bool]] = {}
    thresholds: dict[str, float | None] = {}
    kinds: dict[str, str] = {}
    if ids:
        row = store.version_row(model, version)
        features = list((row or {}).get("features") or [])
        for wid, name, kind, value, threshold, is_drifted in store.metric_results(
            model, metric, min(ids), max(ids)
        ):
            i = column.get(int(wid))
            if i is None:
                continue
            if name not in values:
                values[name] = [None] * len(ids)
                drifted[name] = [False] * len(ids)
                if name not in features:
                    features.append(name)
            values[name][i] = None if value is None else float(value)
            drifted[name][i] = bool(is_drifted)
            kinds[name] = str(kind)
            if threshold is not None:
                thresholds[name] = float(threshold)
        features = [f for f in features if f in values]
    return {
        "model": model,
        "version": version,
        "route": route,
        "metric": metric,
        "drift_when": "below" if metric in LOW_IS_DRIFT else "above",
        "windows": [_window(w) for w in windows],
        "features": [
            {
                "name": f,
                "kind": kinds.get(f),
                "threshold": thresholds.get(f),
                "values": values[f],
                "drifted": drifted[f],
            }
            for f in features
        ],
    }


def _window(w: GridWindow) -> dict[str, Any]:
    wid, start, end, n, share, share_threshold, dataset, pred, perf, labelled, seq = w
    prediction = json.loads(pred) if pred else None
    columns = (prediction or {}).get("columns", [])
    return {
        "id": int(wid),
        "seq": int(seq),
        "start": _time(start),
        "end": _time(end),
        "end_s": end / 1e6 if end is not None else None,
        "rows": int(n or 0),
        "share_drifted": share,
        "share_threshold": share_threshold,
        "dataset_drift": bool(dataset),
        "prediction_drift": bool((prediction or {}).get("drifted")),
        "prediction_psi": max((c.get("psi") or 0.0 for c in columns), default=None),
        "performance": json.loads(perf) if perf else None,
        "labelled_rows": int(labelled or 0),
    }


def window_distributions(store: MonitorStore, window_id: int) -> dict[str, dict[str, Any]]:
    """Per column of one window (features, and ``@``-prefixed prediction columns): reference
    and current shares per bin with the bins' labels, the null share and the unseen share."""
    shares = distributions(store, window_id)
    columns = {}
    for pid in store.window_profile_ids(window_id):
        profile = store.load_profile(pid)
        for col in profile.columns if profile else []:
            columns[col.name] = col
    figures = store.null_and_unseen(window_id)
    out: dict[str, dict[str, Any]] = {}
    for name, dist in shares.items():
        profile_col = columns.get(name)
        labels = (
            profile_col.labels() if profile_col is not None else [str(b) for b in dist["bins"][:-1]]
        )
        labels = [*labels, "(null)"]
        if len(labels) != len(dist["ref"]):
            labels = [str(b) for b in dist["bins"]]
        null_rate, unseen = figures.get(name, (None, None))
        out[name] = {
            "kind": profile_col.kind if profile_col is not None else None,
            "labels": labels,
            "ref": dist["ref"],
            "cur": dist["cur"],
            "ref_null_share": dist["ref"][-1],
            "null_share": null_rate if null_rate is not None else dist["cur"][-1],
            "unseen_share": unseen,
        }
    return out


def latest_alerts(store: MonitorStore) -> dict[str, dict[str, Any]]:
    """Per model, the newest alert queued in the outbox (any endpoint, suppressed included)."""
    return {
        model: {"event_type": kind, "at": iso(created), "status": status}
        for model, (kind, created, status) in store.latest_outbox().items()
    }


def alert_messages(store: MonitorStore, *, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` outbox messages, newest first, with the model they are about."""
    out = []
    for message in store.newest_messages(limit):
        item = message._asdict()
        for k in ("created_at", "delivered_at", "next_attempt_at"):
            item[k] = iso(item[k]) if item[k] is not None else None
        out.append(item)
    return out


def endpoint_summary(store: MonitorStore) -> list[dict[str, Any]]:
    """Per webhook endpoint: messages by status and the last delivery error."""
    out = []
    for (
        endpoint,
        delivered,
        pending,
        failed,
        suppressed,
        last_error,
        last_ok,
    ) in store.endpoint_counts():
        state = "failing" if failed or (pending and last_error) else "ok"
        out.append(
            {
                "endpoint": endpoint,
                "delivered": int(delivered),
                "pending": int(pending),
                "failed": int(failed),
                "suppressed": int(suppressed),
                "last_error": last_error,
                "last_delivered_at": iso(last_ok) if last_ok is not None else None,
                "state": state,
            }
        )
    return out
