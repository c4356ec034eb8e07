"""Drift statistics of windows against frozen reference bins, from bin counts.

All figures come from bin counts, never from raw rows, for any set of windows at once
(the store's ``STATS_SQL`` sums the counts; the p-values and final figures are numpy here):

- PSI and Jensen-Shannon distance (natural log, as ``scipy.spatial.distance.jensenshannon``)
  on the coarse bins plus the null bucket; PSI clips proportions at ``PSI_EPSILON``.
- KS: the largest gap between the two CDFs at the fine reference-quantile boundaries; this
  equals ``scipy.stats.ks_2samp`` on the bin indices, and differs from the exact statistic on
  raw values by at most the largest fine-bin mass of either sample.
- Wasserstein-1 of the samples snapped to their fine bin's upper boundary (values outside the
  reference range keep their value), divided by the reference standard deviation; equals
  ``scipy.stats.wasserstein_distance`` on the snapped samples.
- Chi-square (categorical) on the 2 x k table of reference and current counts (empty columns
  dropped), as ``scipy.stats.chi2_contingency(correction=False)``.
P-values come from the statistic (KS: Kolmogorov limit with Stephens' correction for
``n*m/(n+m)``, see ``ks_pvalue``; chi-square: ``scipy.stats.chi2.sf``), computed in numpy
(``monitor.stats.distributions``): a pass never imports scipy (only windows under 100 effective
rows use ``scipy.stats.kstwo``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.stats.distributions import chi2_sf, kolmogorov_sf

PSI_EPSILON = 1e-4

NUMERIC_OUT = (
    "ref_rows",
    "rows",
    "nulls",
    "psi",
    "js",
    "chi2",
    "chi2_dof",
    "ks",
    "wasserstein_raw",
    "std",
    "ref_nulls",
    "null_rate",
    "ref_null_rate",
    "unseen_share",
    "mean",
)


def ks_pvalue(d: np.ndarray, en: np.ndarray) -> np.ndarray:
    """Two-sided KS p-value, Stephens' finite-n correction of the Kolmogorov limit.

    ``scipy.stats.kstwo.sf`` (what ``ks_2samp(method="asymp")`` uses) costs ~1 ms a call;
    this costs ~50 ns and stays within 0.006 of it for ``n*m/(n+m) >= 500`` (0.02 down to
    100; below 100, where the approximation is poor, the exact ``kstwo`` is used).

    >>> round(float(ks_pvalue(np.array([0.05]), np.array([990.0]))[0]), 3)
    0.014
    """
    s = np.sqrt(en)
    out = np.clip(kolmogorov_sf((s + 0.12 + 0.11 / s) * d), 0.0, 1.0)
    small = en < 100  # tiny windows: the exact distribution, cheap enough there
    if np.any(small):
        from scipy import stats as sps  # only tiny windows need scipy.stats (heavy import)

        out[small] = sps.kstwo.sf(d[small], en[small])
    return np.asarray(out, dtype=np.float64)


def finish(c: dict[str, np.ndarray]) -> None:
    """Normalize Wasserstein and turn statistics into p-values."""
    w = c.pop("wasserstein_raw")
    std = c["std"]
    c["wasserstein_abs"] = w
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(std > 0, w / std, np.where(w == 0, 0.0, np.nan))
    c["wasserstein"] = norm
    nr, nq = c["ref_rows"], c["rows"]
    with np.errstate(divide="ignore", invalid="ignore"):
        en = np.round(nr * nq / (nr + nq))
    ok = np.isfinite(c["ks"]) & (en > 0)
    pks = np.full(len(w), np.nan)
    if ok.any():
        pks[ok] = ks_pvalue(c["ks"][ok], en[ok])
    c["ks_pvalue"] = pks
    categorical = c["kind"] == "categorical"
    c["chi2"] = np.where(categorical, c["chi2"], np.nan)
    dof = c["chi2_dof"]
    okc = categorical & np.isfinite(c["chi2"]) & (dof > 0)
    pch = np.full(len(w), np.nan)
    if okc.any():
        pch[okc] = chi2_sf(dof[okc], c["chi2"][okc])  # = scipy.stats.chi2.sf
    c["chi2_pvalue"] = pch
    for key in ("psi", "js", "ks", "wasserstein", "null_rate", "unseen_share", "mean"):
        c[key] = np.where(np.isfinite(c[key]), c[key], np.nan)


def as_rows(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Row dicts (NaN as None) of ``window_statistics`` output, for tests and reports."""
    n = len(columns["window_id"])
    out = []
    for i in range(n):
        row: dict[str, Any] = {}
        for key, arr in columns.items():
            v = arr[i]
            if isinstance(v, float | np.floating):
                row[key] = None if not np.isfinite(v) else float(v)
            elif isinstance(v, np.integer):
                row[key] = int(v)
            else:
                row[key] = v
        out.append(row)
    return out
