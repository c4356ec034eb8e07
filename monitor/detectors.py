"""Change detectors on the streams of prediction confidence and of errors.

ADWIN (``monitor.adwin``) watches the confidence stream, fed with means of
``detector_batch_rows`` consecutive rows. DDM (``monitor.ddm``) watches the 0/1 error stream
of labelled rows in label-arrival order. Both are River's algorithms, written here (and
checked against River in the tests) so the monitor does not import River and, through it,
scikit-learn and scipy.stats. Their state is kept in the monitor's DuckDB file so a restart
continues the same streams.
"""

from __future__ import annotations

import logging
import pickle
from typing import TYPE_CHECKING

import numpy as np

from monitor.adwin import ADWIN
from monitor.ddm import DDM

if TYPE_CHECKING:
    from monitor.config import MonitorConfig
    from monitor.store import MonitorStore

log = logging.getLogger(__name__)


def _load(store: MonitorStore, key: tuple[str, int, str], detector: str) -> object | None:
    row = store.con.execute(
        "SELECT state FROM detector_state WHERE model=? AND version=? AND route=? AND detector=?",
        [*key, detector],
    ).fetchone()
    if not row:
        return None
    try:
        # our own state file, written only by this class: never a foreign pickle
        state: object = pickle.loads(row[0])  # noqa: S301
        return state
    except Exception as exc:  # noqa: BLE001 - state of an older monitor: start afresh
        log.warning("monitor: %s state of %s unreadable (%s); restarted", detector, key, exc)
        return None


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
        self.adwin = ADWIN(delta=self.delta)
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

    def save(self, store: MonitorStore) -> None:
        _save(store, self.key, self.NAME, self)


class ErrorMonitor:
    """DDM over the 0/1 error stream of labelled predictions."""

    NAME = "ddm"

    def __init__(self, key: tuple[str, int, str]) -> None:
        self.key = key
        self._reset()

    def _reset(self) -> None:
        self.ddm = DDM()
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
