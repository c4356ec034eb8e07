"""Oracle tests: every SQL figure against scipy on the same binned (or raw) data.

Tolerances, and why:
- KS on the fine bins equals ``ks_2samp`` on the bin indices (1e-9); against the raw values
  it may differ by at most the largest fine-bin mass of either sample (the CDFs are only
  compared at the reference-quantile boundaries).
- Wasserstein equals ``wasserstein_distance`` on the samples snapped to their bin's upper
  boundary (1e-9 relative); against raw values it differs by at most sum(width * mass) of the
  interior bins.
- JS equals ``jensenshannon`` and chi-square equals ``chi2_contingency(correction=False)`` on
  the same coarse histograms (1e-9).
- The KS p-value (Stephens' approximation) is within 0.02 of ``ks_2samp(method="asymp")``,
  and within 0.006 when n*m/(n+m) >= 500.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from monitor.compute.statistics import window_statistics
from monitor.config import MonitorConfig
from monitor.ingest.windows import WindowPart, write_counts
from monitor.stats.binning import BinCounts, NumericBinner, categorical_codes
from monitor.stats.drift import PSI_EPSILON, as_rows
from monitor.stats.profile import (
    ReferenceProfile,
    categorical_profile,
    coarse_counts,
    numeric_profile,
)
from monitor.store import MonitorStore


def _figures(
    store: MonitorStore, profile: ReferenceProfile, current: dict[str, Any], window_id: int = 1
) -> dict[str, dict[str, Any]]:
    """Store ``profile`` and one window of ``current`` values; return its SQL figures."""
    if not store.has_profile(profile.profile_id):
        store.save_profile(profile, now=0.0)
        store.save_version(
            "m",
            1,
            profile_id=profile.profile_id,
            task="regression",
            classes=[],
            features=[c.name for c in profile.columns],
        )
    part = WindowPart(window_id=window_id, seq=window_id, time_key=None, existing_rows=0)
    for col in profile.columns:
        acc = part.counts[col.name] = BinCounts(col.n_bins)
        values = current[col.name]
        if col.kind == "categorical":
            codes = categorical_codes(values, col.categories)
            acc.counts += np.bincount(codes[codes >= 0], minlength=col.n_bins)
            acc.nulls += int((codes < 0).sum())
        else:
            NumericBinner(col.boundaries).count(np.asarray(values, dtype=np.float64), acc)
    n = len(next(iter(current.values())))
    store.con.execute(
        "INSERT INTO windows VALUES (?, 'm', 1, 'champion', ?, NULL, 0, 1, ?, true, 1, 0)",
        [window_id, window_id, n],
    )
    write_counts(store, [part], {c.name: c for c in profile.columns})
    rows = as_rows(window_statistics(store, [window_id]))
    return {r["name"]: r for r in rows}


@pytest.fixture
def store() -> MonitorStore:
    s = MonitorStore(":memory:", threads=1)
    yield s
    s.close()


def _snap(x: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    idx = NumericBinner(boundaries).bin_index(x)
    inside = (idx >= 1) & (idx <= len(boundaries))
    out = x.copy()
    out[inside] = boundaries[idx[inside] - 1]
    return out


def _coarse_hist(prof: Any, x: np.ndarray) -> np.ndarray:
    acc = BinCounts(prof.n_bins)
    NumericBinner(prof.boundaries).count(x, acc)
    return np.append(coarse_counts(acc.counts, prof.coarse), acc.nulls).astype(np.float64)


samples = st.tuples(
    st.integers(20, 2000),  # reference rows
    st.integers(1, 1500),  # current rows
    st.floats(-2, 2),  # mean shift
    st.floats(0.3, 3),  # scale
    st.sampled_from(["normal", "exponential", "integers"]),
    st.integers(0, 2**32 - 1),
)


def _draw(kind: str, rng: np.random.Generator, n: int, shift: float, scale: float) -> np.ndarray:
    if kind == "normal":
        return rng.normal(shift, scale, size=n)
    if kind == "exponential":
        return rng.exponential(scale, size=n) + shift
    return np.round(rng.normal(shift, 3 * scale, size=n))  # heavy ties


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=samples, fine=st.sampled_from([10, 100, 1000]))
def test_numeric_figures_match_scipy(store: MonitorStore, case: tuple[Any, ...], fine: int) -> None:
    n_ref, n_cur, shift, scale, kind, seed = case
    rng = np.random.default_rng(seed)
    ref = _draw(kind, rng, n_ref, 0.0, 1.0)
    cur = _draw(kind, rng, n_cur, shift, scale)
    store.con.execute(
        "DELETE FROM windows; DELETE FROM window_counts; DELETE FROM profiles;"
        " DELETE FROM profile_columns; DELETE FROM versions"
    )
    prof = numeric_profile("x", ref, bins=10, fine_bins=fine)
    got = _figures(store, ReferenceProfile(f"p{seed}{fine}", [prof], n_ref), {"x": cur})["x"]
    binner = NumericBinner(prof.boundaries)
    ri, ci = binner.bin_index(ref), binner.bin_index(cur)

    # KS: exact on bin indices, bounded against raw values
    exact_binned = sps.ks_2samp(ri, ci, method="asymp")
    assert got["ks"] == pytest.approx(exact_binned.statistic, abs=1e-9)
    raw = sps.ks_2samp(ref, cur).statistic
    mass = max(np.bincount(ri).max() / n_ref, np.bincount(ci).max() / n_cur)
    assert got["ks"] <= raw + 1e-9
    assert raw - got["ks"] <= mass + 1e-9
    en = n_ref * n_cur / (n_ref + n_cur)
    assert got["ks_pvalue"] == pytest.approx(exact_binned.pvalue, abs=0.006 if en >= 500 else 0.02)

    # Wasserstein: exact on snapped samples, normalized by the reference std
    w_snapped = sps.wasserstein_distance(_snap(ref, prof.boundaries), _snap(cur, prof.boundaries))
    std = ref.std()
    if std > 0:
        assert got["wasserstein"] == pytest.approx(w_snapped / std, rel=1e-7, abs=1e-9)
        widths = np.diff(prof.boundaries)
        p_ref = np.bincount(ri, minlength=binner.n_bins)[2:-1] / n_ref
        p_cur = np.bincount(ci, minlength=binner.n_bins)[2:-1] / n_cur
        bound = float((widths * (p_ref + p_cur)).sum())
        assert abs(got["wasserstein"] * std - sps.wasserstein_distance(ref, cur)) <= bound + 1e-9

    # JS and PSI on the coarse bins plus the null bucket
    hr, hc = _coarse_hist(prof, ref), _coarse_hist(prof, cur)
    assert got["js"] == pytest.approx(jensenshannon(hr, hc), abs=1e-9)
    p = np.maximum(hr / hr.sum(), PSI_EPSILON)
    q = np.maximum(hc / hc.sum(), PSI_EPSILON)
    assert got["psi"] == pytest.approx(float(((q - p) * np.log(q / p)).sum()), rel=1e-9, abs=1e-12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ref_p=st.lists(st.floats(0.01, 1), min_size=2, max_size=6),
    cur_p=st.lists(st.floats(0.0, 1), min_size=2, max_size=6),
    n_ref=st.integers(50, 3000),
    n_cur=st.integers(20, 2000),
    unseen=st.floats(0, 0.3),
    nulls=st.floats(0, 0.2),
    seed=st.integers(0, 2**32 - 1),
)
def test_categorical_figures_match_scipy(
    store: MonitorStore,
    ref_p: list[float],
    cur_p: list[float],
    n_ref: int,
    n_cur: int,
    unseen: float,
    nulls: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    cats = [f"c{i}" for i in range(len(ref_p))]
    ref = list(rng.choice(cats, size=n_ref, p=np.array(ref_p) / sum(ref_p)))
    k = min(len(cur_p), len(cats))
    w = np.array(cur_p[:k]) + 1e-3
    cur: list[Any] = list(rng.choice(cats[:k], size=n_cur, p=w / w.sum()))
    for i in range(n_cur):
        u = rng.random()
        if u < unseen:
            cur[i] = "never-seen"
        elif u < unseen + nulls:
            cur[i] = None
    store.con.execute(
        "DELETE FROM windows; DELETE FROM window_counts; DELETE FROM profiles;"
        " DELETE FROM profile_columns; DELETE FROM versions"
    )
    prof = categorical_profile("c", ref, categories=cats)
    got = _figures(store, ReferenceProfile(f"c{seed}", [prof], n_ref), {"c": cur})["c"]
    codes = categorical_codes(cur, cats)
    hc = np.append(np.bincount(codes[codes >= 0], minlength=len(cats) + 1), (codes < 0).sum())
    hr = np.append(prof.counts, prof.ref_nulls).astype(np.float64)
    table = np.array([hr, hc], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] > 1:
        chi2, p, dof, _ = sps.chi2_contingency(table, correction=False)
        assert got["chi2"] == pytest.approx(chi2, rel=1e-9, abs=1e-9)
        assert got["chi2_pvalue"] == pytest.approx(p, rel=1e-6, abs=1e-12)
    assert got["js"] == pytest.approx(jensenshannon(hr, hc.astype(np.float64)), abs=1e-9)
    non_null = codes[codes >= 0]
    if len(non_null):
        assert got["unseen_share"] == pytest.approx((non_null == 0).mean())
    assert got["null_rate"] == pytest.approx((codes < 0).mean())


def test_edge_cases_all_nan_constant_and_empty(store: MonitorStore) -> None:
    rng = np.random.default_rng(3)
    normal = numeric_profile("n", rng.normal(size=1000), bins=10, fine_bins=100)
    const = numeric_profile("k", np.full(1000, 2.0), bins=10, fine_bins=100)
    prof = ReferenceProfile("edge", [normal, const], 1000)
    got = _figures(store, prof, {"n": np.full(600, np.nan), "k": np.full(600, 2.0)})
    assert got["n"]["null_rate"] == 1.0
    assert got["n"]["ks"] is None and got["n"]["wasserstein"] is None
    assert got["n"]["psi"] > 5  # the whole mass moved into the null bucket
    assert got["k"]["wasserstein"] == 0.0 and got["k"]["ks"] == 0.0
    moved = _figures(store, prof, {"n": rng.normal(size=600), "k": np.full(600, 5.0)}, 2)
    assert moved["k"]["wasserstein"] is None  # cannot normalize by a zero std
    assert moved["k"]["psi"] > 1 and moved["k"]["js"] > 0.5


def test_stationary_windows_stay_below_thresholds(store: MonitorStore) -> None:
    """Sanity of the defaults: 1000-row windows from the reference distribution."""
    rng = np.random.default_rng(11)
    cfg = MonitorConfig()
    prof = numeric_profile("x", rng.normal(size=100_000), bins=cfg.bins, fine_bins=cfg.fine_bins)
    ref = ReferenceProfile("stationary", [prof], 100_000)
    worst = {"psi": 0.0, "js": 0.0, "wasserstein": 0.0}
    for w in range(1, 41):
        got = _figures(store, ref, {"x": rng.normal(size=1000)}, w)["x"]
        for k in worst:
            worst[k] = max(worst[k], got[k])
    assert worst["psi"] < cfg.psi_threshold / 2
    assert worst["js"] < cfg.js_threshold
    assert worst["wasserstein"] < cfg.wasserstein_threshold
