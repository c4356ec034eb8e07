"""River change detectors on the streams of prediction confidence and of errors.

ADWIN watches the confidence stream, fed with means of ``detector_batch_rows`` consecutive
rows (a Python update per row would cost more than all the binning). DDM watches the
0/1 error stream of labelled rows in label-arrival order. Their state is kept in the
monitor's DuckDB file so a restart continues the same streams.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import numpy as np
from river import drift
from river.drift import binary

if TYPE_CHECKING:
    from monitor.config import MonitorConfig
    from monitor.store import MonitorStore


def _load(store: MonitorStore, key: tuple[str, int, str], detector: str) -> object | None:
    row = store.con.execute(
        "SELECT state FROM detector_state WHERE model=? AND version=? AND route=? AND detector=?",
        [*key, detector],
    ).fetchone()
    # our own state file, written only by this class: never a foreign pickle
    return pickle.loads(row[0]) if row else None  # noqa: S301


def _save(store: MonitorStore, key: tuple[str, int, str], detector: str, state: object) -> None:
    store.con.execute(
        "INSERT OR REPLACE INTO detector_state VALUES (?, ?, ?, ?, ?)",
        [*key, detector, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)],
    )


class ConfidenceMonitor:
    """ADWIN over batch means of the confidence (or regression output) stream."""

    NAME = "adwin"

    def __init__(self, key: tuple[str, int, str], *, batch_rows: int, delta: float) -> None:
        self.key = key
        self.batch_rows = batch_rows
        self.delta = delta
        self._reset()

    def _reset(self) -> None:
        self.adwin = drift.ADWIN(delta=self.delta)
        self.pending_sum = 0.0
        self.pending_n = 0
        self.detections = 0

    @classmethod
    def load(
        cls, store: MonitorStore, model: str, version: int, route: str, *, config: MonitorConfig
    ) -> ConfidenceMonitor:
        key = (model, version, route)
        state = _load(store, key, cls.NAME)
        if isinstance(state, ConfidenceMonitor):
            return state
        return cls(key, batch_rows=config.detector_batch_rows, delta=config.adwin_delta)

    def update(self, values: np.ndarray) -> int:
        """Feed values in stream order; returns how many detections they caused."""
        fired = 0
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        pos = 0
        while pos < len(x):
            take = min(len(x) - pos, self.batch_rows - self.pending_n)
            self.pending_sum += float(x[pos : pos + take].sum())
            self.pending_n += take
            pos += take
            if self.pending_n == self.batch_rows:
                self.adwin.update(self.pending_sum / self.pending_n)
                self.pending_sum, self.pending_n = 0.0, 0
                if self.adwin.drift_detected:
                    fired += 1
        self.detections += fired
        return fired

    @property
    def estimation(self) -> float:
        return float(self.adwin.estimation)

    def save(self, store: MonitorStore) -> None:
        _save(store, self.key, self.NAME, self)


class ErrorMonitor:
    """DDM over the 0/1 error stream of labelled predictions."""

    NAME = "ddm"

    def __init__(self, key: tuple[str, int, str]) -> None:
        self.key = key
        self._reset()

    def _reset(self) -> None:
        self.ddm = binary.DDM()
        self.detections = 0
        self.seen = 0

    @classmethod
    def load(cls, store: MonitorStore, model: str, version: int, route: str) -> ErrorMonitor:
        key = (model, version, route)
        state = _load(store, key, cls.NAME)
        return state if isinstance(state, ErrorMonitor) else cls(key)

    def update(self, errors: np.ndarray) -> int:
        fired = 0
        for e in np.asarray(errors, dtype=bool).tolist():
            self.ddm.update(e)
            self.seen += 1
            if self.ddm.drift_detected:
                fired += 1
        self.detections += fired
        return fired

    def save(self, store: MonitorStore) -> None:
        _save(store, self.key, self.NAME, self)
