"""Reports of computed windows: the JSON document behind every output format.

Fields (issue 6): ``model``, ``version``, ``window`` (``start``, ``end``, ``rows``),
``features`` (``name``, ``kind``, ``psi``, ``ks``, ``ks_pvalue``, ``wasserstein``, ``js``,
``chi2``, ``chi2_pvalue``, ``null_rate``, ``unseen_share``, ``drifted``), ``prediction``,
``performance``, ``share_drifted``, ``dataset_drift``; plus ``route``, ``thresholds``,
``problems`` (bad data seen for the model, counted by kind) and ``alerts``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from monitor.alerts import outbox
from monitor.alerts.webhooks import iso
from monitor.compute.decide import FEATURE_FIELDS

if TYPE_CHECKING:
    from monitor.store import MonitorStore
    from monitor.store.rows import SummaryRow


class ReportError(LookupError):
    """Nothing to report for the requested model/version."""


def build_report(
    store: MonitorStore,
    model: str,
    *,
    version: int | None = None,
    route: str | None = None,
    window: str = "latest",
) -> dict[str, Any]:
    """The latest complete window (``window="latest"``) or every one (``"all"``)."""
    if window not in ("latest", "all"):
        raise ReportError(f"window: expected latest or all, got {window!r}")
    rows = store.summaries(model, version, route)
    if version is None and rows:
        version = rows[-1].version
        rows = [r for r in rows if r.version == version]
    base: dict[str, Any] = {"model": model, "version": version}
    base["problems"] = problem_summary(store, model)
    base["alerts"] = alerts(store, model)
    if not rows:
        base.update(
            window=None,
            features=[],
            prediction=None,
            performance=None,
            share_drifted=None,
            dataset_drift=None,
            note=_empty_note(store, model, version),
        )
        return base
    selected = rows if window == "all" else rows[-1:]
    reports = [_window_report(store, r) for r in selected]
    if window == "all":
        base["windows"] = reports
        return base
    base.update(reports[0])
    return base


def _empty_note(store: MonitorStore, model: str, version: int | None) -> str:
    n, rows = store.window_totals(model, version)
    return (
        f"no complete window yet for model {model}"
        + (f" version {version}" if version is not None else "")
        + f" ({n} open window(s), {rows} row(s) so far)"
    )


def _window_report(store: MonitorStore, r: SummaryRow) -> dict[str, Any]:
    wid, version, route, seq, start_us, end_us, rows, share, dataset, pred, perf, labelled = r
    order = {name: i for i, name in enumerate(store.feature_names(wid))}
    items = sorted(store.feature_results(wid), key=lambda e: order.get(e["name"], 1 << 30))
    features = [_feature(e) for e in items]
    prediction = json.loads(pred) if pred else None
    performance = json.loads(perf) if perf else {"labelled_rows": int(labelled or 0)}
    return {
        "version": int(version),
        "route": route,
        "window": {
            "id": int(wid),
            "seq": int(seq),
            "start": iso(start_us / 1e6) if start_us is not None else None,
            "end": iso(end_us / 1e6) if end_us is not None else None,
            "rows": int(rows),
        },
        "features": features,
        "prediction": prediction,
        "performance": performance,
        "share_drifted": share,
        "dataset_drift": bool(dataset),
    }


SIGNALS = {
    "psi": "psi_drift",
    "wasserstein": "wasserstein_drift",
    "js": "js_drift",
    "null_rate": "null_rate_drift",
    "unseen_share": "unseen_share_drift",
    "ks_pvalue": "ks_pvalue_signal",
    "chi2_pvalue": "chi2_pvalue_signal",
}


def _feature(e: dict[str, Any]) -> dict[str, Any]:
    """One feature of the report from its wide ``results`` row."""
    out: dict[str, Any] = {"name": e["name"], "kind": e["kind"]}
    out.update({k: e[k] for k in FEATURE_FIELDS})
    out["drifted"] = bool(e["drifted"])
    out["streak"] = int(e["streak"])
    out["thresholds"] = {k: e[k + "_threshold"] for k in SIGNALS}
    out["signals"] = {k: bool(e[v]) for k, v in SIGNALS.items()}
    return out


def problem_summary(store: MonitorStore, model: str) -> dict[str, Any]:
    """Bad data and failures seen for ``model`` (or for no model in particular)."""
    items = store.problems(model)
    counts: dict[str, int] = {}
    for p in items:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    recent = [
        {"kind": p["kind"], "detail": p["detail"], "at": iso(p["ts"]), "version": p["version"]}
        for p in items[-20:]
    ]
    return {"total": len(items), "by_kind": counts, "recent": recent}


def alerts(store: MonitorStore, model: str) -> list[dict[str, Any]]:
    out = outbox.messages(store, model)
    for item in out:
        item["created_at"] = iso(item["created_at"])
        item["delivered_at"] = iso(item["delivered_at"]) if item["delivered_at"] else None
    return out


def distributions(store: MonitorStore, window_id: int) -> dict[str, dict[str, Any]]:
    """Reference and current shares per coarse bin (null bucket last), per column."""
    out: dict[str, dict[str, Any]] = {}
    for name, ref_coarse, ref_nulls, coarse, nulls in store.column_counts(window_id):
        ref = [float(v) for v in ref_coarse] + [float(ref_nulls)]
        cur = [float(v) for v in coarse] + [float(nulls)]
        tr, tq = sum(ref) or 1.0, sum(cur) or 1.0
        out[name] = {
            "bins": [*range(len(ref) - 1), -1],
            "ref": [v / tr for v in ref],
            "cur": [v / tq for v in cur],
        }
    return out
