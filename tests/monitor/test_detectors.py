"""Our ADWIN and DDM against River's (the oracle), and the detectors' stored state."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import MonitorConfig
from monitor.detectors.adwin import ADWIN
from monitor.detectors.ddm import DDM
from monitor.detectors.streams import (
    ConfidenceMonitor,
    ErrorMonitor,
    confidence_monitor,
    error_monitor,
)
from monitor.store import MonitorStore

drift = pytest.importorskip("river.drift")
binary = pytest.importorskip("river.drift.binary")

DATA = Path(__file__).parent / "data"


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


def _adwin(store: MonitorStore, config: MonitorConfig) -> ConfidenceMonitor:
    key = ("m", 1, "champion")
    return confidence_monitor(
        key,
        store.detector_state(key, ConfidenceMonitor.NAME),
        batch_rows=config.detector_batch_rows,
        delta=config.adwin_delta,
    )


def _ddm(store: MonitorStore) -> ErrorMonitor:
    key = ("m", 1, "champion")
    return error_monitor(key, store.detector_state(key, ErrorMonitor.NAME))


def test_detector_state_survives_a_restart(tmp_path: Path) -> None:
    config = MonitorConfig()
    store = MonitorStore(tmp_path / "m.duckdb")
    adwin = _adwin(store, config)
    x = _stream(6, 1, 30_000)
    adwin.update(x[:15_000])
    store.save_detector_state(adwin.key, adwin.NAME, adwin.state())
    ddm = _ddm(store)
    ddm.update(np.zeros(500, dtype=bool))
    store.save_detector_state(ddm.key, ddm.NAME, ddm.state())
    store.close()
    store = MonitorStore(tmp_path / "m.duckdb")
    again = _adwin(store, config)
    straight = ConfidenceMonitor(("m", 1, "champion"), batch_rows=100, delta=0.002)
    straight.update(x[:15_000])
    assert again.update(x[15_000:]) == straight.update(x[15_000:])
    assert _ddm(store).seen == 500
    # arrays of another layout (a newer monitor's) start afresh instead of failing the pass
    store.con.execute("UPDATE detector_state SET ints = [99]")
    assert _adwin(store, config).detections == 0 and _ddm(store).seen == 0
    store.close()


def test_pickled_state_of_an_older_monitor_is_migrated_to_arrays(tmp_path: Path) -> None:
    """A DuckDB file written before states were arrays: its pickles (made by that code, see
    ``data/legacy_detectors.json``) are read once at open, stored as arrays and dropped, and
    the detectors carry on exactly as the old code did on the same continuation."""
    legacy = json.loads((DATA / "legacy_detectors.json").read_text())
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE detector_state (model VARCHAR, version BIGINT, route VARCHAR,"
        " detector VARCHAR, state BLOB, PRIMARY KEY (model, version, route, detector))"
    )
    for detector in ("adwin", "ddm"):
        blob = bytes.fromhex(legacy["pickles"][detector])
        con.execute(
            "INSERT INTO detector_state VALUES ('churn', 1, 'champion', ?, ?)", [detector, blob]
        )
    # and one that is not a detector at all: refused by name, never unpickled into anything
    evil = pickle.dumps(os.getcwd, protocol=pickle.HIGHEST_PROTOCOL)
    con.execute("INSERT INTO detector_state VALUES ('churn', 1, 'canary', 'adwin', ?)", [evil])
    con.close()
    store = MonitorStore(path)
    stored = store.con.execute(
        "SELECT route, detector, state IS NULL, len(floats) FROM detector_state ORDER BY ALL"
    ).fetchall()
    assert [r[:3] for r in stored] == [("champion", "adwin", True), ("champion", "ddm", True)]
    key = ("churn", 1, "champion")
    adwin = confidence_monitor(key, store.detector_state(key, "adwin"), batch_rows=100, delta=0.002)
    ddm = error_monitor(key, store.detector_state(key, "ddm"))
    assert adwin.batch_rows == 10  # the migrated stream's own settings, not today's defaults
    rng = np.random.default_rng(4)
    more_c = np.r_[rng.normal(0.8, 0.05, 997), rng.normal(0.3, 0.05, 3000)]
    more_e = rng.random(400) < 0.05
    after = legacy["after"]
    assert adwin.update(more_c) == after["adwin_fired"]
    assert adwin.detections == after["adwin_detections"]
    assert adwin.estimation == pytest.approx(after["adwin_estimation"], rel=1e-12)
    assert (adwin.adwin.width, adwin.pending_n) == (after["adwin_width"], after["adwin_pending_n"])
    assert ddm.update(more_e) == after["ddm_fired"]
    assert (ddm.detections, ddm.seen) == (after["ddm_detections"], after["ddm_seen"])
    store.close()
    # a second open finds nothing left to migrate
    again = MonitorStore(path)
    assert again.detector_state(key, "adwin") is not None
    assert again.con.execute(
        "SELECT count(*) FROM detector_state WHERE state IS NOT NULL"
    ).fetchone() == (0,)
    again.close()
