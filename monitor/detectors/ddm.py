"""DDM, the Drift Detection Method (Gama et al., 2004), as ``river.drift.binary.DDM`` has it.

Watches a 0/1 error stream: drift when the error rate plus its standard deviation rises
``drift_threshold`` deviations above the best (lowest) point seen after ``warm_start`` values.
After a detection the next value starts afresh. Checked against River's outputs in the tests.
"""

from __future__ import annotations

import math


class DDM:
    """Drift detector on a stream of booleans (True = the model erred).

    >>> d = DDM()
    >>> for i, error in enumerate([False] * 200 + [True] * 50):
    ...     d.update(error)
    ...     if d.drift_detected:
    ...         break
    >>> i
    200
    """

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.p_min = math.inf
        self.s_min = math.inf
        self.ps_min = math.inf
        self.drift_detected = False
        self.warning_detected = False

    def update(self, error: bool) -> None:
        """Feed one value; read ``drift_detected`` / ``warning_detected`` afterwards."""
        if self.drift_detected:
            self._reset()
        # running mean in River's order of operations (stats.Mean), so results match exactly
        self.n += 1
        self.mean += (1.0 / self.n) * (float(error) - self.mean)
        p, n = self.mean, self.n
        s = math.sqrt(p * (1 - p) / n)
        if n <= self.warm_start:
            return
        if p + s <= self.ps_min:
            self.p_min, self.s_min = p, s
            self.ps_min = p + s
        self.warning_detected = p + s > self.p_min + self.warning_threshold * self.s_min
        if p + s > self.p_min + self.drift_threshold * self.s_min:
            self.drift_detected = True
            self.warning_detected = False
