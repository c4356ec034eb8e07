"""The numpy survival functions against scipy's, over the ranges the monitor meets."""

from __future__ import annotations

import numpy as np
from scipy import special

from monitor.stats.distributions import chi2_sf, kolmogorov_sf


def test_kolmogorov_sf_equals_scipy() -> None:
    y = np.r_[np.linspace(0.0, 4.0, 4001), 1e-6, 0.04, 0.999999, 1.000001, 8.0, 50.0, -1.0]
    np.testing.assert_allclose(kolmogorov_sf(y), special.kolmogorov(y), rtol=1e-12, atol=1e-15)
    assert np.isnan(kolmogorov_sf(np.array([np.nan])))[0]


def test_chi2_sf_equals_scipy_for_integer_dof() -> None:
    rng = np.random.default_rng(0)
    dof = rng.integers(1, 2000, 5000).astype(np.float64)
    x = dof * rng.uniform(0.0, 4.0, 5000)
    x[:50] = 0.0
    dof[:20] = np.arange(1, 21)
    want = special.chdtrc(dof, x)
    np.testing.assert_allclose(chi2_sf(dof, x), want, rtol=1e-10, atol=1e-300)


def test_chi2_sf_far_tail_and_bad_input() -> None:
    dof, x = np.array([1.0, 1.0, 2.0, 5.0]), np.array([1500.0, 1300.0, 1400.0, 1300.0])
    got, want = chi2_sf(dof, x), special.chdtrc(dof, x)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0.0)
    assert ((got > 0) == (want > 0)).all()  # no underflow to zero where scipy has a value
    bad = chi2_sf(np.array([0.0, -1.0, 2.5, np.nan, 3.0]), np.array([1.0, 1.0, 1.0, 1.0, np.nan]))
    assert np.isnan(bad).all()
