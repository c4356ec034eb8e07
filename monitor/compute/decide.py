"""Drift decisions: thresholds, minimum rows, k consecutive windows, dataset share.

A column's window is *raw-flagged* when at least ``min_rows`` rows were seen and one deciding
statistic crosses its threshold; it is *drifted* after ``consecutive`` raw-flagged windows in
a row. KS and chi-square p-values are recorded beside as supporting evidence only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import MonitorConfig

DECIDING = ("psi", "wasserstein", "js", "null_rate", "unseen_share")
SUPPORTING = ("ks_pvalue", "chi2_pvalue")


# The per-feature figures of every output (JSON, table, HTML, alert payload), in display order.
FEATURE_FIELDS = (
    "psi",
    "wasserstein",
    "js",
    "ks",
    "ks_pvalue",
    "chi2",
    "chi2_pvalue",
    "null_rate",
    "unseen_share",
)


def thresholds(config: MonitorConfig) -> dict[str, float]:
    """Threshold of every statistic (``null_rate``: increase over the reference rate)."""
    return {
        "psi": config.psi_threshold,
        "wasserstein": config.wasserstein_threshold,
        "js": config.js_threshold,
        "null_rate": config.null_rate_threshold,
        "unseen_share": config.unseen_threshold,
        "ks_pvalue": config.ks_pvalue,
        "chi2_pvalue": config.chi2_pvalue,
    }


def dataset_decision(
    drifted: list[bool], *, window_rows: int, config: MonitorConfig
) -> tuple[float, bool]:
    """Share of drifted features and the dataset-drift decision.

    >>> from monitor.config import MonitorConfig
    >>> dataset_decision([True, False, True, True], window_rows=1000, config=MonitorConfig())
    (0.75, True)
    """
    if not drifted:
        return 0.0, False
    share = sum(drifted) / len(drifted)
    return share, window_rows >= config.min_rows and share >= config.dataset_drift_share
