"""The two survival functions the drift statistics need, in numpy (no scipy import).

``scipy.special`` costs ~26 MiB and ~50 ms to import in every monitor process for two
functions; these are the textbook series, vectorized, and agree with scipy to ~1e-15
(``tests/monitor/test_stats_oracle.py`` holds them to scipy).
"""

from __future__ import annotations

import math

import numpy as np

_TERMS = 24  # both Kolmogorov series have converged to double precision well before this
_erfc = np.frompyfunc(math.erfc, 1, 1)


def kolmogorov_sf(y: np.ndarray) -> np.ndarray:
    """``P(K > y)`` for the Kolmogorov limit distribution (``scipy.special.kolmogorov``).

    Above ``y = 1``: ``2 * sum((-1)**(k-1) * exp(-2 k**2 y**2))``; below, one minus the
    Jacobi-theta form of the CDF, ``sqrt(2 pi)/y * sum(exp(-(2k-1)**2 pi**2 / (8 y**2)))``.

    >>> [round(float(v), 6) for v in kolmogorov_sf(np.array([0.0, 0.5, 1.0, 2.0]))]
    [1.0, 0.963945, 0.27, 0.000671]
    """
    y = np.asarray(y, dtype=np.float64)
    out = np.ones(y.shape)
    k = np.arange(1, _TERMS + 1, dtype=np.float64)[:, None]
    big = y >= 1.0
    if big.any():
        yb = y[big][None, :]
        signs = np.where(k % 2 == 1, 1.0, -1.0)
        out[big] = 2.0 * np.sum(signs * np.exp(-2.0 * k * k * yb * yb), axis=0)
    small = (y > 0) & ~big
    if small.any():
        ys = y[small][None, :]
        cdf = (
            math.sqrt(2.0 * math.pi)
            / ys[0]
            * np.sum(np.exp(-((2.0 * k - 1.0) ** 2) * math.pi**2 / (8.0 * ys * ys)), axis=0)
        )
        out[small] = 1.0 - cdf
    out[np.isnan(y)] = np.nan
    return np.clip(out, 0.0, 1.0)


def chi2_sf(dof: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``P(X > x)`` for chi-square with integer ``dof`` (``scipy.special.chdtrc``).

    With ``h = x/2``: even ``dof = 2m`` gives ``exp(-h) * sum(h**i / i!, i < m)``; odd
    ``dof = 2m+1`` gives ``erfc(sqrt(h)) + exp(-h) * sum(h**(i-1/2) / Gamma(i+1/2), 1..m)``.
    Terms are summed in log space, so large ``x`` and ``dof`` neither overflow nor lose the
    tail. Non-integer or non-positive ``dof`` gives NaN.

    >>> [round(float(v), 6) for v in chi2_sf(np.array([1.0, 2.0, 3.0, 10.0]),
    ...                                      np.array([3.841459, 2.0, 0.0, 25.0]))]
    [0.05, 0.367879, 1.0, 0.005346]
    """
    dof = np.asarray(dof, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    out = np.full(np.broadcast(dof, x).shape, np.nan)
    dof, x = np.broadcast_arrays(dof, x)
    ok = np.isfinite(dof) & (dof > 0) & (dof == np.round(dof)) & ~np.isnan(x)
    if not ok.any():
        return out
    d = dof[ok].astype(np.int64)
    h = np.maximum(x[ok], 0.0) / 2.0
    odd = d % 2 == 1
    m = d // 2  # terms in the finite sum
    total = np.zeros(len(d))
    with np.errstate(divide="ignore"):
        log_h = np.log(h)
    # even dof: i = 0 .. m-1 of h**i / i!; odd dof: i = 1 .. m of h**(i - 1/2) / Gamma(i + 1/2)
    for i in range(int(m.max()) + 1):
        even_term = ~odd & (i < m)
        odd_term = odd & (i >= 1) & (i <= m)
        if not (even_term.any() or odd_term.any()):
            continue
        power = np.where(odd, i - 0.5, float(i))
        lgam = np.where(odd, math.lgamma(i + 0.5), math.lgamma(i + 1.0))
        with np.errstate(invalid="ignore"):
            log_term = -h + np.where(power == 0, 0.0, power * log_h) - lgam
        use = even_term | odd_term
        total[use] += np.exp(log_term[use])
    if odd.any():
        total[odd] += np.asarray(_erfc(np.sqrt(h[odd])), dtype=np.float64)
    out[ok] = np.clip(total, 0.0, 1.0)
    return out
