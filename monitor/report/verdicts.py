"""Why each column's verdict is what it is: a drift score, the deciding test and a reason.

A verdict without its reason looks wrong (a Wasserstein distance of 0.67 against a 0.1
threshold shown "stable"); the reason names the rule that decided it: the minimum window size,
the k-consecutive-windows rule, or the statistic that crossed its threshold.

The **drift score** of a column is its largest deciding statistic divided by that statistic's
threshold (PSI, normalized Wasserstein, Jensen-Shannon): below 1 is within every threshold,
1 or more crosses one. It sorts the summary table and colours the over-time heat map.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.compute.decide import DECIDING

# statistics whose figure / threshold is the score (null and unseen shares are rates whose
# threshold applies to an increase, reported as crossings only)
SCORED = ("psi", "wasserstein", "js")
LABELS = {
    "psi": "PSI",
    "wasserstein": "normalized Wasserstein",
    "js": "Jensen-Shannon",
    "null_rate": "null-rate increase",
    "unseen_share": "unseen-category share",
}


def score(feature: dict[str, Any]) -> tuple[float | None, str | None]:
    """The drift score and the statistic it comes from (None when nothing was measured).

    >>> score({"psi": 0.1, "wasserstein": 0.3, "js": None,
    ...        "thresholds": {"psi": 0.2, "wasserstein": 0.1, "js": 0.1}})
    (3.0, 'wasserstein')
    """
    best: tuple[float | None, str | None] = (None, None)
    thresholds = feature.get("thresholds") or {}
    for key in SCORED:
        value, limit = feature.get(key), thresholds.get(key)
        if value is None or not limit or not math.isfinite(float(value)):
            continue
        ratio = float(value) / float(limit)
        if best[0] is None or ratio > best[0]:
            best = (round(ratio, 4), key)
    return best


def explain(
    feature: dict[str, Any], *, window_rows: int, min_rows: int, consecutive: int
) -> dict[str, Any]:
    """``verdict`` (drifted | watch | stable), ``score``, ``decided_by`` and ``reason``.

    >>> f = {"name": "x", "wasserstein": 0.67, "psi": 0.05, "js": 0.02, "drifted": False,
    ...      "streak": 0, "signals": {"wasserstein": True},
    ...      "thresholds": {"psi": 0.2, "wasserstein": 0.1, "js": 0.1}}
    >>> explain(f, window_rows=80, min_rows=500, consecutive=2)["reason"]
    'normalized Wasserstein 0.67 ≥ 0.1, but the window has 80 rows < min_rows 500: not judged'
    """
    value, decided_by = score(feature)
    thresholds = feature.get("thresholds") or {}
    signals = feature.get("signals") or {}
    crossed = [k for k in DECIDING if signals.get(k)]
    streak = int(feature.get("streak") or 0)

    def figure(key: str) -> str:
        v, t = feature.get(key), thresholds.get(key)
        shown = "–" if v is None else f"{float(v):.3g}"
        return f"{LABELS.get(key, key)} {shown} ≥ {t:g}" if t is not None else shown

    if crossed:
        # the crossing statistic furthest past its threshold decides
        decided_by = max(crossed, key=lambda k: _ratio(feature, thresholds, k))
    if feature.get("drifted"):
        verdict = "drifted"
        reason = (
            f"{figure(decided_by or crossed[0])} in {streak} consecutive windows"
            f" (k = {consecutive})"
            if crossed or decided_by
            else f"drifted in {streak} consecutive windows (k = {consecutive})"
        )
    elif crossed and window_rows < min_rows:
        verdict = "stable"
        reason = (
            f"{figure(decided_by or crossed[0])}, but the window has {window_rows} rows"
            f" < min_rows {min_rows}: not judged"
        )
    elif crossed:
        verdict = "watch"
        reason = (
            f"{figure(decided_by or crossed[0])} in {streak} of the {consecutive}"
            " consecutive windows a drift needs"
        )
    elif window_rows < min_rows:
        verdict = "stable"
        reason = f"the window has {window_rows} rows < min_rows {min_rows}: not judged"
    else:
        verdict = "stable"
        v = feature.get(decided_by) if decided_by is not None else None
        if decided_by is not None and v is not None:
            reason = (
                f"every statistic within its threshold (closest: {LABELS[decided_by]}"
                f" {float(v):.3g} of {thresholds[decided_by]:g})"
            )
        else:
            reason = "no statistic could be computed for this column"
    return {"verdict": verdict, "score": value, "decided_by": decided_by, "reason": reason}


def _ratio(feature: dict[str, Any], thresholds: dict[str, Any], key: str) -> float:
    value, limit = feature.get(key), thresholds.get(key)
    if value is None or not limit:
        return 0.0
    ratio = float(value) / float(limit)
    return ratio if math.isfinite(ratio) else 0.0


def annotate(
    report: dict[str, Any],
    *,
    min_rows: int,
    consecutive: int,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """``report`` (one window, or ``windows``) with every column explained, in place.

    Columns stored without their thresholds (the prediction and score columns) are judged
    against ``thresholds`` (``monitor.compute.decide.thresholds(config)``).
    """
    windows = report.get("windows") or ([report] if report.get("window") else [])
    for w in windows:
        rows = int((w.get("window") or {}).get("rows") or 0)
        columns = [*w.get("features", []), *((w.get("prediction") or {}).get("columns") or [])]
        for f in columns:
            if "thresholds" not in f and thresholds is not None:
                f["thresholds"] = {k: v for k, v in thresholds.items() if k in LABELS}
            if "signals" not in f and "thresholds" in f:
                f["signals"] = {
                    k: f.get(k) is not None and float(f[k]) >= t
                    for k, t in f["thresholds"].items()
                    if k in SCORED
                }
            if "thresholds" in f:
                f.update(explain(f, window_rows=rows, min_rows=min_rows, consecutive=consecutive))
    report["rules"] = {"min_rows": min_rows, "consecutive": consecutive}
    return report
