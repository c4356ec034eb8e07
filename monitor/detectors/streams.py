"""Change detectors on the streams of prediction confidence and of errors.

ADWIN (``monitor.detectors.adwin``) watches the confidence stream, fed with means of
``detector_batch_rows`` consecutive rows. DDM (``monitor.detectors.ddm``) watches the 0/1
error stream of labelled rows in label-arrival order. Both are River's algorithms, written
here (and checked against River in the tests) so the monitor does not import River and,
through it, scikit-learn and scipy.stats.

Their state is two plain arrays (:class:`DetectorState`: floats and ints, in a documented
order led by a layout number), which the store keeps in the monitor's DuckDB file so that a
restart continues the same streams. Arrays, unlike pickles, do not name a module: moving code
cannot silently reset a detector.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from monitor.detectors.adwin import ADWIN, ROWS
from monitor.detectors.ddm import DDM

log = logging.getLogger(__name__)

LAYOUT = 1  # ints[0] of every state: bump it when an order below changes


class DetectorState(NamedTuple):
    """A detector's state as the store keeps it."""

    floats: np.ndarray  # float64
    ints: np.ndarray  # int64


class StateError(ValueError):
    """Arrays that are not the state of this detector (another layout, another detector)."""


class ConfidenceMonitor:
    """ADWIN over batch means of the confidence (or regression output) stream."""

    NAME = "adwin"

    def __init__(self, key: tuple[str, int, str], *, batch_rows: int, delta: float) -> None:
        self.key = key
        self.batch_rows = batch_rows
        self.delta = delta
        self.adwin = ADWIN(delta=delta)
        self.pending_sum = 0.0
        self.pending_n = 0
        self.detections = 0

    def update(self, values: np.ndarray) -> int:
        """Feed values in stream order; returns how many detections they caused."""
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        need = self.batch_rows - self.pending_n
        if len(x) < need:
            self.pending_sum += float(x.sum())
            self.pending_n += len(x)
            return 0
        first = (self.pending_sum + float(x[:need].sum())) / self.batch_rows
        rest = x[need:]
        full = len(rest) // self.batch_rows * self.batch_rows
        means = np.empty(1 + full // self.batch_rows, dtype=np.float64)
        means[0] = first
        means[1:] = rest[:full].reshape(-1, self.batch_rows).sum(axis=1) / self.batch_rows
        self.pending_sum = float(rest[full:].sum())
        self.pending_n = len(rest) - full
        fired = len(self.adwin.update_many(means))
        self.detections += fired
        return fired

    @property
    def estimation(self) -> float:
        return float(self.adwin.estimation)

    def state(self) -> DetectorState:
        """floats: delta, pending_sum, ADWIN's sums (3), totals and variances (rows x
        buckets each); ints: layout, batch_rows, pending_n, detections, ADWIN's clock,
        max_buckets, min_window_length, grace_period, its counters (4) and bucket counts."""
        a = self.adwin
        floats = np.concatenate(
            [[self.delta, self.pending_sum], a._sf, a._tot.ravel(), a._var.ravel()]
        )
        head = [LAYOUT, self.batch_rows, self.pending_n, self.detections, a.clock,
                a.max_buckets, a.min_window_length, a.grace_period]  # fmt: skip
        ints = np.concatenate([np.asarray(head, dtype=np.int64), a._si, a._cnt])
        return DetectorState(floats.astype(np.float64), ints.astype(np.int64))

    @classmethod
    def restore(cls, key: tuple[str, int, str], state: DetectorState) -> ConfidenceMonitor:
        """The detector ``state()`` described (raises :class:`StateError` on other arrays).

        >>> c = ConfidenceMonitor(("m", 1, "champion"), batch_rows=10, delta=0.002)
        >>> _ = c.update(np.linspace(0, 1, 1234))
        >>> back = ConfidenceMonitor.restore(c.key, c.state())
        >>> (back.pending_n, back.estimation) == (c.pending_n, c.estimation)
        True
        """
        f, i = np.asarray(state.floats, np.float64), np.asarray(state.ints, np.int64)
        if len(i) < 8 or i[0] != LAYOUT:
            raise StateError(f"adwin state: expected layout {LAYOUT}, got {i[:1].tolist()}")
        _, batch_rows, pending_n, detections, clock, buckets, min_len, grace = i[:8].tolist()
        width = buckets + 1
        if len(f) != 5 + 2 * ROWS * width or len(i) != 8 + 4 + ROWS:
            raise StateError(f"adwin state: {len(f)} floats / {len(i)} ints do not fit")
        out = cls(key, batch_rows=batch_rows, delta=float(f[0]))
        out.pending_sum, out.pending_n, out.detections = float(f[1]), pending_n, detections
        a = ADWIN(out.delta, clock=clock, max_buckets=buckets, min_window_length=min_len,
                  grace_period=grace)  # fmt: skip
        a._sf[:] = f[2:5]
        a._tot[:] = f[5 : 5 + ROWS * width].reshape(ROWS, width)
        a._var[:] = f[5 + ROWS * width :].reshape(ROWS, width)
        a._si[:] = i[8:12]
        a._cnt[:] = i[12:]
        out.adwin = a
        return out


class ErrorMonitor:
    """DDM over the 0/1 error stream of labelled predictions."""

    NAME = "ddm"

    def __init__(self, key: tuple[str, int, str]) -> None:
        self.key = key
        self.ddm = DDM()
        self.detections = 0
        self.seen = 0

    def update(self, errors: np.ndarray) -> int:
        fired = 0
        for e in np.asarray(errors, dtype=bool).tolist():
            self.ddm.update(e)
            self.seen += 1
            if self.ddm.drift_detected:
                fired += 1
        self.detections += fired
        return fired

    def state(self) -> DetectorState:
        """floats: DDM's mean, p_min, s_min, ps_min, warning and drift thresholds; ints:
        layout, detections, seen, DDM's n, warm_start, drift and warning flags."""
        d = self.ddm
        floats = [d.mean, d.p_min, d.s_min, d.ps_min, d.warning_threshold, d.drift_threshold]
        ints = [LAYOUT, self.detections, self.seen, d.n, d.warm_start,
                int(d.drift_detected), int(d.warning_detected)]  # fmt: skip
        return DetectorState(np.asarray(floats, np.float64), np.asarray(ints, np.int64))

    @classmethod
    def restore(cls, key: tuple[str, int, str], state: DetectorState) -> ErrorMonitor:
        """The detector ``state()`` described (raises :class:`StateError` on other arrays).

        >>> e = ErrorMonitor(("m", 1, "champion"))
        >>> _ = e.update(np.arange(100) % 7 == 0)
        >>> back = ErrorMonitor.restore(e.key, e.state())
        >>> (back.seen, back.state().floats.tolist()) == (100, e.state().floats.tolist())
        True
        """
        f, i = np.asarray(state.floats, np.float64), np.asarray(state.ints, np.int64)
        if len(i) != 7 or i[0] != LAYOUT or len(f) != 6:
            raise StateError(f"ddm state: {len(f)} floats / {len(i)} ints do not fit")
        out = cls(key)
        _, out.detections, out.seen, n, warm, drift, warning = i.tolist()
        d = DDM(warm_start=warm, warning_threshold=float(f[4]), drift_threshold=float(f[5]))
        d.n, d.mean, d.p_min, d.s_min, d.ps_min = n, *(float(v) for v in f[:4])
        d.drift_detected, d.warning_detected = bool(drift), bool(warning)
        out.ddm = d
        return out


def confidence_monitor(
    key: tuple[str, int, str], state: DetectorState | None, *, batch_rows: int, delta: float
) -> ConfidenceMonitor:
    """The stored ADWIN stream of ``key``, or a fresh one (none stored, or unusable arrays)."""
    if state is not None:
        try:
            return ConfidenceMonitor.restore(key, state)
        except StateError as exc:
            log.warning("monitor: adwin state of %s unusable (%s); restarted", key, exc)
    return ConfidenceMonitor(key, batch_rows=batch_rows, delta=delta)


def error_monitor(key: tuple[str, int, str], state: DetectorState | None) -> ErrorMonitor:
    """The stored DDM stream of ``key``, or a fresh one (none stored, or unusable arrays)."""
    if state is not None:
        try:
            return ErrorMonitor.restore(key, state)
        except StateError as exc:
            log.warning("monitor: ddm state of %s unusable (%s); restarted", key, exc)
    return ErrorMonitor(key)
