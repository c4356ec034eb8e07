"""The binning kernel against the plain numpy definition of the bins."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.stats.binning import BinCounts, NumericBinner, categorical_codes
from monitor.stats.profile import categorical_profile, coarse_counts, numeric_profile

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
values = st.one_of(finite, st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")))


@settings(max_examples=150, deadline=None)
@given(
    ref=arrays(np.float64, st.integers(1, 300), elements=finite),
    cur=arrays(np.float64, st.integers(0, 300), elements=values),
    fine=st.sampled_from([5, 10, 100, 1000]),
)
def test_kernel_counts_match_searchsorted(ref: np.ndarray, cur: np.ndarray, fine: int) -> None:
    prof = numeric_profile("x", ref, bins=min(fine, 5), fine_bins=fine)
    binner = NumericBinner(prof.boundaries)
    got = BinCounts(binner.n_bins)
    binner.count(cur, got)
    idx = binner.bin_index(cur)
    expected = np.bincount(idx[idx >= 0], minlength=binner.n_bins)
    assert got.counts.tolist() == expected.tolist()
    assert got.nulls == int((idx < 0).sum())
    b = prof.boundaries
    ok = np.isfinite(cur)
    assert np.isclose(got.under_sum, cur[ok & (cur < b[0])].sum())
    assert np.isclose(got.over_sum, cur[ok & (cur > b[-1])].sum())


def test_bin_edges_follow_the_documented_rule() -> None:
    binner = NumericBinner(np.array([0.0, 1.0, 2.0]))
    x = np.array([-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, np.nan, np.inf])
    assert binner.bin_index(x).tolist() == [0, 1, 2, 2, 3, 3, 4, -1, -1]
    acc = BinCounts(binner.n_bins)
    binner.count(x, acc)
    assert acc.counts.tolist() == [1, 1, 2, 2, 1]
    assert acc.nulls == 2


def test_reference_fills_quantile_bins_evenly() -> None:
    x = np.random.default_rng(0).normal(size=100_000)
    prof = numeric_profile("x", x, bins=10, fine_bins=1000)
    coarse = coarse_counts(prof.counts, prof.coarse)
    # underflow and overflow are empty for the reference; the 10 deciles hold ~10% each
    assert coarse[0] == 0 and coarse[-1] == 0
    shares = coarse[2:-1] / coarse.sum()
    assert np.allclose(shares, 0.1, atol=0.001)
    assert prof.counts.max() <= 0.0011 * len(x) + 1  # fine bins hold ~0.1% each


def test_constant_and_all_null_references_do_not_break() -> None:
    const = numeric_profile("c", np.full(50, 3.0), bins=10, fine_bins=100)
    assert const.constant and const.boundaries.tolist() == [3.0]
    empty = numeric_profile("e", np.full(20, np.nan), bins=10, fine_bins=100)
    assert empty.ref_nulls == 20 and empty.counts.sum() == 0


def test_categorical_codes_and_unseen_bucket() -> None:
    prof = categorical_profile("c", ["a", "b", "a", None], categories=["a", "b"])
    assert prof.counts.tolist() == [0, 2, 1]
    assert categorical_codes(["b", "zz", None], prof.categories).tolist() == [2, 0, -1]


@settings(max_examples=100, deadline=None)
@given(
    ref=arrays(np.float64, st.integers(0, 300), elements=values),
    fine=st.sampled_from([5, 10, 100, 1000]),
)
def test_reference_counts_match_the_kernel(ref: np.ndarray, fine: int) -> None:
    # the profile counts its sorted reference with searchsorted, the windows with the kernel
    prof = numeric_profile("x", ref, bins=min(fine, 5), fine_bins=fine)
    binner = NumericBinner(prof.boundaries)
    got = BinCounts(binner.n_bins)
    binner.count(ref, got)
    assert prof.counts.tolist() == got.counts.tolist()
    assert prof.ref_nulls == got.nulls
