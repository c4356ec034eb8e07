"""Our ADWIN and DDM against River's (the oracle), and the detectors' stored state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.adwin import ADWIN
from monitor.config import MonitorConfig
from monitor.ddm import DDM
from monitor.detectors import ConfidenceMonitor, ErrorMonitor
from monitor.store import MonitorStore

drift = pytest.importorskip("river.drift")
binary = pytest.importorskip("river.drift.binary")


def _stream(seed: int, kind: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == 0:  # stationary
        return rng.normal(size=n)
    if kind == 1:  # one mean shift half way
        return np.r_[rng.normal(0, 1, n // 2), rng.normal(rng.uniform(0.2, 2), 1, n - n // 2)]
    if kind == 2:  # bits
        return rng.integers(0, 2, n).astype(np.float64)
    return np.cumsum(rng.normal(size=n)) * 0.05  # a random walk: many detections


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.integers(0, 3),
    n=st.integers(0, 4000),
    delta=st.sampled_from([0.002, 0.1, 0.5, 1e-5]),
    clock=st.sampled_from([1, 5, 32]),
    grace=st.sampled_from([0, 10, 50]),
    min_len=st.sampled_from([1, 5, 20]),
)
def test_adwin_matches_river(  # noqa: PLR0913
    seed: int, kind: int, n: int, delta: float, clock: int, grace: int, min_len: int
) -> None:
    x = _stream(seed, kind, n)
    theirs = drift.ADWIN(delta=delta, clock=clock, grace_period=grace, min_window_length=min_len)
    fired = []
    for i, v in enumerate(x.tolist()):
        theirs.update(v)
        if theirs.drift_detected:
            fired.append(i)
    ours = ADWIN(delta, clock=clock, grace_period=grace, min_window_length=min_len)
    assert ours.update_many(x).tolist() == fired
    assert ours.width == int(theirs.width)
    assert ours.estimation == pytest.approx(theirs.estimation, rel=1e-12, abs=1e-12)
    assert ours.variance == pytest.approx(theirs.variance, rel=1e-9, abs=1e-9)
    assert ours.drift_detected == theirs.drift_detected


def test_adwin_one_value_at_a_time_equals_arrays() -> None:
    x = _stream(3, 1, 3000)
    one = ADWIN()
    fired = []
    for i, v in enumerate(x):
        one.update(float(v))
        if one.drift_detected:
            fired.append(i)
    many = ADWIN()
    got = np.concatenate([many.update_many(part) + start for start, part in
                          ((s, x[s : s + 77]) for s in range(0, len(x), 77))])  # fmt: skip
    assert fired == got.tolist() and fired  # the shift is found
    assert many.estimation == one.estimation and many.n_detections == one.n_detections


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 3000),
    before=st.floats(0.0, 0.5),
    after=st.floats(0.0, 1.0),
    warm_start=st.integers(1, 60),
    warning=st.floats(1.0, 2.5),
    threshold=st.floats(2.5, 4.0),
)
def test_ddm_matches_river(  # noqa: PLR0913
    seed: int, n: int, before: float, after: float, warm_start: int, warning: float,
    threshold: float,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    errors = np.r_[rng.random(n // 2) < before, rng.random(n - n // 2) < after].tolist()
    kwargs = {"warm_start": warm_start, "warning_threshold": warning, "drift_threshold": threshold}
    theirs, ours = binary.DDM(**kwargs), DDM(**kwargs)
    for e in errors:
        theirs.update(e)
        ours.update(e)
        assert (ours.drift_detected, ours.warning_detected) == (
            theirs.drift_detected,
            theirs.warning_detected,
        )


def test_confidence_monitor_batches_means_whatever_the_pieces() -> None:
    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0.5, 0.1, 50_000), rng.normal(0.7, 0.1, 50_000)]
    x[::97] = np.nan  # non-finite scores are skipped
    whole = ConfidenceMonitor(("m", 1, "champion"), batch_rows=100, delta=0.002)
    fired_whole = whole.update(x)
    parts = ConfidenceMonitor(("m", 1, "champion"), batch_rows=100, delta=0.002)
    fired_parts = sum(parts.update(x[s : s + 333]) for s in range(0, len(x), 333))
    assert fired_whole == fired_parts >= 1
    assert parts.estimation == pytest.approx(whole.estimation)
    assert (parts.pending_n, parts.pending_sum) == pytest.approx(
        (whole.pending_n, whole.pending_sum)
    )


def test_detector_state_survives_a_restart(tmp_path: Path) -> None:
    config = MonitorConfig()
    store = MonitorStore(tmp_path / "m.duckdb")
    adwin = ConfidenceMonitor.load(store, "m", 1, "champion", config=config)
    x = _stream(6, 1, 30_000)
    adwin.update(x[:15_000])
    adwin.save(store)
    ddm = ErrorMonitor.load(store, "m", 1, "champion")
    ddm.update(np.zeros(500, dtype=bool))
    ddm.save(store)
    store.close()
    store = MonitorStore(tmp_path / "m.duckdb")
    again = ConfidenceMonitor.load(store, "m", 1, "champion", config=config)
    straight = ConfidenceMonitor(("m", 1, "champion"), batch_rows=100, delta=0.002)
    straight.update(x[:15_000])
    assert again.update(x[15_000:]) == straight.update(x[15_000:])
    assert ErrorMonitor.load(store, "m", 1, "champion").seen == 500
    # an unreadable state (an older monitor's) starts afresh instead of failing the pass
    store.con.execute("UPDATE detector_state SET state = 'garbage'::BLOB")
    assert ConfidenceMonitor.load(store, "m", 1, "champion", config=config).detections == 0
    store.close()
