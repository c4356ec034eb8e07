"""Exact and score statistics for rollout analysis, in plain Python floats.

Everything here is a pure function of counts: binomial tail probabilities through the
regularized incomplete beta function (a continued fraction, exact to ~1e-12 and O(1) in ``n``),
Clopper-Pearson and Wilson intervals, Newcombe's interval for a difference of two
proportions, the pooled two-proportion z-test and the exact McNemar test. No scipy: the
trainer's process stays light, and the tests check each figure against scipy and against
brute-force sums over ``math.comb``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_EPS = 1e-15
_TINY = 1e-300


def z_quantile(p: float) -> float:
    """The standard normal quantile.

    >>> round(z_quantile(0.975), 4)
    1.96
    """
    return NormalDist().inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` (the Beta(a, b) CDF).

    >>> round(beta_cdf(0.5, 2.0, 2.0), 12)
    0.5
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def binom_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``.

    >>> round(binom_cdf(1, 3, 0.5), 12)
    0.5
    """
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return beta_cdf(1.0 - p, n - k, k + 1)


def binom_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``.

    >>> round(binom_sf(2, 3, 0.5), 12)
    0.5
    """
    return 1.0 - binom_cdf(k - 1, n, p) if k > 0 else 1.0


def _beta_ppf(q: float, a: float, b: float) -> float:
    """The Beta(a, b) quantile by bisection (the CDF is monotone; 100 halvings reach 1e-30)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided ``1 - alpha`` interval of a proportion ``k/n``.

    >>> lo, hi = clopper_pearson(0, 10)
    >>> lo, round(hi, 4)
    (0.0, 0.3085)
    """
    if n <= 0:
        return 0.0, 1.0
    lo = 0.0 if k <= 0 else _beta_ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k >= n else _beta_ppf(1 - alpha / 2, k + 1, n - k)
    return lo, hi


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score two-sided ``1 - alpha`` interval of ``k/n`` ((0, 1) when ``n == 0``).

    >>> [round(x, 4) for x in wilson(5, 10)]
    [0.2366, 0.7634]
    """
    if n <= 0:
        return 0.0, 1.0
    z = z_quantile(1 - alpha / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 (k = n) the bound is exactly 0 (1); the subtraction would leave rounding
    lo = 0.0 if k <= 0 else max(0.0, centre - half)
    hi = 1.0 if k >= n else min(1.0, centre + half)
    return lo, hi


def newcombe_difference(
    k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for ``k1/n1 - k2/n2``.

    Unlike the Wald interval it keeps a width when both counts are zero: no errors in
    ten requests is not evidence of an error rate of zero.

    >>> [round(x, 4) for x in newcombe_difference(0, 10, 0, 10)]
    [-0.2775, 0.2775]
    """
    p1 = k1 / n1 if n1 else 0.0
    p2 = k2 / n2 if n2 else 0.0
    l1, u1 = wilson(k1, n1, alpha)
    l2, u2 = wilson(k2, n2, alpha)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """The pooled two-proportion z statistic for ``p1 > p2`` and its one-sided p-value.

    >>> z, p = two_proportion_z(30, 100, 10, 100)
    >>> round(z, 3), round(p, 5)
    (3.536, 0.0002)
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:
        return 0.0, 1.0 if k1 / n1 <= k2 / n2 else 0.0
    z = (k1 / n1 - k2 / n2) / se
    return z, 1.0 - NormalDist().cdf(z)


def mcnemar_exact(b: int, c: int) -> float:
    """The exact (binomial) McNemar test's two-sided p-value for discordant counts ``b, c``.

    >>> round(mcnemar_exact(10, 2), 5)
    0.03857
    >>> mcnemar_exact(0, 0)
    1.0
    """
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(b, c), n, 0.5))


def zero_event_n(alpha: float, share: float) -> int:
    """The fewest trials with no event that put the one-sided ``1 - alpha`` upper bound of an
    event share below ``share`` (``(1 - share)^n <= alpha``; the "rule of three" for 5 %).

    >>> zero_event_n(0.05, 0.01)
    299
    """
    return math.ceil(math.log(alpha) / math.log1p(-share))


def n_for_difference(p1: float, p2: float, margin: float, alpha: float) -> int | None:
    """Per-arm sample size at which the one-sided ``1 - alpha`` bound of ``p1 - p2`` falls
    below ``margin`` if the rates stay as observed (None when ``p1 - p2 >= margin``: no amount
    of traffic would pass it).

    >>> n_for_difference(0.0, 0.0, 0.01, 0.05)
    271
    """
    gap = margin - (p1 - p2)
    if gap <= 0:
        return None
    z = z_quantile(1 - alpha)
    variance = p1 * (1 - p1) + p2 * (1 - p2)
    # with no observed events the score interval still has width ~z^2/n on the event side
    return max(math.ceil(z * z * variance / (gap * gap)), math.ceil(z * z / gap))


def quantile(values: list[float], q: float) -> float | None:
    """Linear-interpolation quantile (numpy's default, DuckDB's ``quantile_cont``); None when
    there are no values.

    >>> quantile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    """
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
