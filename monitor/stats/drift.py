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
- Noise floors (``psi_floor``, ``wasserstein_floor``, ``js_floor``): what sampling noise alone
  gives each distance for this window's and the reference's sizes, ``noise_z`` standard
  deviations above its mean when nothing drifted. With ``n = rows * ref_rows / (rows +
  ref_rows)`` and ``k`` non-empty cells: PSI ~ chi2(k-1) / n and JS divergence ~ chi2(k-1) /
  (8 n) (their second-order expansions); Wasserstein-1 has mean ``sqrt(2 / (pi n)) *
  sum(sqrt(F (1 - F)) * width)`` over the fine bins (``|F_ref - F_window|`` is half-normal
  at each boundary) and at most ``sqrt(pi / 2 - 1)`` times that as standard deviation, over
  the reference standard deviation. A window of 1,000 rows against a small reference reads
  a normalized Wasserstein of 0.1 from noise alone; the floors keep that from counting.
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
    "w_spread",
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


def noise_floors(
    en: np.ndarray, cells_dof: np.ndarray, w_spread: np.ndarray, std: np.ndarray, z: float
) -> dict[str, np.ndarray]:
    """The distances sampling noise alone reaches (``z`` standard deviations above their mean
    under no drift), for effective sizes ``en`` (see the module docstring).

    >>> f = noise_floors(np.array([500.0]), np.array([10.0]), np.array([0.8]),
    ...                  np.array([1.0]), 4.0)
    >>> [round(float(f[k][0]), 3) for k in ("psi", "js", "wasserstein")]
    [0.056, 0.083, 0.115]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2_bound = cells_dof + z * np.sqrt(2.0 * cells_dof)
        w_mean = np.sqrt(2.0 / (np.pi * en)) * w_spread / std
        return {
            "psi": chi2_bound / en,
            "js": np.sqrt(chi2_bound / (8.0 * en)),
            "wasserstein": w_mean * (1.0 + z * np.sqrt(np.pi / 2.0 - 1.0)),
        }


def finish(c: dict[str, np.ndarray], noise_z: float = 4.0) -> None:
    """Normalize Wasserstein, turn statistics into p-values, add the noise floors."""
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
    floors = noise_floors(en, dof, c.pop("w_spread"), std, noise_z)
    for key, floor in floors.items():
        c[f"{key}_floor"] = np.where(np.isfinite(floor) & (en > 0), floor, np.nan)
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
