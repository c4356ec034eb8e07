"""The rollout statistics against exact references: sums over ``math.comb`` in rational
arithmetic, scipy, and published examples."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from trainer.promotion import stats


def _exact_cdf(k: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 60),
    data=st.data(),
    p=st.fractions(min_value=Fraction(1, 100), max_value=Fraction(99, 100), max_denominator=100),
)
def test_binom_cdf_is_the_exact_sum(n: int, data: st.DataObject, p: Fraction) -> None:
    k = data.draw(st.integers(-1, n + 1))
    expected = _exact_cdf(min(k, n), n, p) if k >= 0 else 0.0
    assert stats.binom_cdf(k, n, float(p)) == pytest.approx(expected, rel=1e-10, abs=1e-14)
    expected_sf = 1.0 - (_exact_cdf(k - 1, n, p) if k >= 1 else 0.0)
    assert stats.binom_sf(k, n, float(p)) == pytest.approx(expected_sf, rel=1e-9, abs=1e-13)


@pytest.mark.parametrize(("k", "n", "p"), [(0, 5000, 0.01), (37, 5000, 0.01), (2600, 5000, 0.5),
                                           (99_000, 100_000, 0.99), (12, 20, 0.3)])  # fmt: skip
def test_binom_cdf_large_n_agrees_with_scipy(k: int, n: int, p: float) -> None:
    assert stats.binom_cdf(k, n, p) == pytest.approx(sp.binom.cdf(k, n, p), rel=1e-9, abs=1e-300)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 3000), data=st.data(), alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_clopper_pearson_is_the_beta_quantile(n: int, data: st.DataObject, alpha: float) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = stats.clopper_pearson(k, n, alpha)
    ref_lo = 0.0 if k == 0 else sp.beta.ppf(alpha / 2, k, n - k + 1)
    ref_hi = 1.0 if k == n else sp.beta.ppf(1 - alpha / 2, k + 1, n - k)
    assert lo == pytest.approx(ref_lo, abs=1e-9)
    assert hi == pytest.approx(ref_hi, abs=1e-9)
    # the defining property: each tail has probability alpha/2 at the bound
    if k > 0:
        assert stats.binom_sf(k, n, lo) == pytest.approx(alpha / 2, rel=1e-6)
    if k < n:
        assert stats.binom_cdf(k, n, hi) == pytest.approx(alpha / 2, rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 5000), data=st.data())
def test_wilson_solves_the_score_equation(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    z = sp.norm.ppf(0.975)
    lo, hi = stats.wilson(k, n, 0.05)
    # the Wilson bounds are the roots p of (k/n - p)^2 = z^2 p (1 - p) / n
    for bound in (lo, hi):
        gap = (k / n - bound) ** 2 - z * z * bound * (1 - bound) / n
        assert gap == pytest.approx(0.0, abs=1e-12)
    assert lo <= k / n <= hi


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),  # a zero count keeps a width
    ],
)
def test_newcombe_method_10_matches_the_published_examples(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
    lo, hi = stats.newcombe_difference(*counts, 0.05)
    assert (round(lo, 4), round(hi, 4)) == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_two_proportion_z_is_the_pooled_statistic(n1: int, n2: int, data: st.DataObject) -> None:
    k1, k2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    z, p = stats.two_proportion_z(k1, n1, k2, n2)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        assert z == 0.0
        return
    assert z == pytest.approx((k1 / n1 - k2 / n2) / se, rel=1e-12)
    assert p == pytest.approx(sp.norm.sf(z), rel=1e-7, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_exact_is_scipys_binomial_test(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else sp.binomtest(b, b + c, 0.5).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("alpha", "share"), [(0.05, 0.01), (0.01, 0.01), (0.05, 0.5)])
def test_zero_event_n_is_the_smallest_such_n(alpha: float, share: float) -> None:
    n = stats.zero_event_n(alpha, share)
    assert (1 - share) ** n <= alpha < (1 - share) ** (n - 1)
    # and it is exactly when the Clopper-Pearson one-sided bound falls below ``share``
    assert stats.clopper_pearson(0, n, 2 * alpha)[1] <= share
    assert stats.clopper_pearson(0, n - 1, 2 * alpha)[1] > share


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300),
    st.floats(0, 1),
)
def test_quantile_is_numpys_linear_quantile(values: list[float], q: float) -> None:
    got = stats.quantile(values, q)
    assert got == pytest.approx(float(np.quantile(values, q)), rel=1e-9, abs=1e-9)


def test_edge_cases() -> None:
    assert stats.quantile([], 0.99) is None
    assert stats.clopper_pearson(0, 0) == (0.0, 1.0)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.two_proportion_z(0, 0, 3, 10) == (0.0, 1.0)
    assert stats.n_for_difference(0.05, 0.0, 0.01, 0.05) is None  # already past the margin
    assert stats.binom_cdf(3, 3, 0.5) == 1.0 and stats.binom_cdf(-1, 3, 0.5) == 0.0
