"""ADWIN (Bifet and Gavalda, 2007), River's variant, compiled: a whole array per call.

The same algorithm as ``river.drift.ADWIN`` (exponential histogram of buckets, ``clock``,
``grace_period``, ``min_window_length``; after a detection the next value starts a fresh
window), checked against River's outputs in the tests. State lives in small numpy arrays so
that a batch of values is one compiled call instead of a Python call per value, and so the
detector pickles as plain arrays (no River import on the monitor's path).
"""

from __future__ import annotations

import math

import numpy as np

from kernels import kernel

ROWS = 64  # bucket rows: row r holds buckets of 2**r values (2**64 values is plenty)

# float state
_TOTAL, _VARIANCE, _WIDTH = 0, 1, 2
# int state
_ROWS, _TICK, _DETECTIONS, _DETECTED = 0, 1, 2, 3


@kernel
def _compress(tot: np.ndarray, var: np.ndarray, cnt: np.ndarray, si: np.ndarray, cap: int) -> None:
    idx = 0
    while idx < si[_ROWS] and cnt[idx] == cap + 1:
        if idx + 1 >= si[_ROWS]:
            si[_ROWS] += 1
            cnt[idx + 1] = 0
        n = 2.0**idx
        mu1 = tot[idx, 0] / n
        mu2 = tot[idx, 1] / n
        total12 = tot[idx, 0] + tot[idx, 1]
        v12 = var[idx, 0] + var[idx, 1] + n * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        nxt = cnt[idx + 1]
        tot[idx + 1, nxt] = total12
        var[idx + 1, nxt] = v12
        cnt[idx + 1] = nxt + 1
        _shift(tot, var, cnt, idx, 2)
        if cnt[idx + 1] <= cap:
            break
        idx += 1


@kernel
def _shift(tot: np.ndarray, var: np.ndarray, cnt: np.ndarray, row: int, k: int) -> None:
    width = tot.shape[1]
    for i in range(k, width):
        tot[row, i - k] = tot[row, i]
        var[row, i - k] = var[row, i]
    for i in range(width - k, width):
        tot[row, i] = 0.0
        var[row, i] = 0.0
    cnt[row] -= k


@kernel
def _delete_oldest(
    tot: np.ndarray, var: np.ndarray, cnt: np.ndarray, sf: np.ndarray, si: np.ndarray
) -> None:
    last = si[_ROWS] - 1
    n = 2.0**last
    u = tot[last, 0]
    mu = u / n
    v = var[last, 0]
    sf[_WIDTH] -= n
    sf[_TOTAL] -= u
    mu_window = sf[_TOTAL] / sf[_WIDTH]
    sf[_VARIANCE] -= v + n * sf[_WIDTH] * (mu - mu_window) * (mu - mu_window) / (n + sf[_WIDTH])
    _shift(tot, var, cnt, last, 1)
    if cnt[last] == 0:
        si[_ROWS] -= 1


@kernel
def _cut(
    sf: np.ndarray, n0: float, n1: float, delta_mean: float, delta: float, min_len: int
) -> bool:
    width = sf[_WIDTH]
    delta_prime = math.log(2.0 * math.log(width) / delta)
    m_recip = 1.0 / (n0 - min_len + 1) + 1.0 / (n1 - min_len + 1)
    epsilon = (
        math.sqrt(2.0 * m_recip * (sf[_VARIANCE] / width) * delta_prime)
        + 2.0 / 3.0 * delta_prime * m_recip
    )
    return abs(delta_mean) > epsilon


@kernel
def _detect(  # noqa: C901 - River's loop, kept in one piece to compare line by line
    tot: np.ndarray,
    var: np.ndarray,
    cnt: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    delta: float,
    clock: int,
    min_len: int,
    grace: int,
) -> bool:
    change = False
    si[_TICK] += 1
    if si[_TICK] % clock != 0 or sf[_WIDTH] <= grace:
        return False
    reduce = True
    while reduce:
        reduce = False
        done = False
        n0 = 0.0
        n1 = sf[_WIDTH]
        u0 = 0.0
        u1 = sf[_TOTAL]
        for idx in range(si[_ROWS] - 1, -1, -1):
            if done:
                break
            n2 = 2.0**idx
            last = cnt[idx] - 1
            for k in range(cnt[idx]):
                n0 += n2
                n1 -= n2
                u0 += tot[idx, k]
                u1 -= tot[idx, k]
                if idx == 0 and k == last:
                    done = True
                    break
                delta_mean = u0 / n0 - u1 / n1
                if n1 >= min_len and n0 >= min_len and _cut(sf, n0, n1, delta_mean, delta, min_len):
                    reduce = True
                    change = True
                    if sf[_WIDTH] > 0:
                        _delete_oldest(tot, var, cnt, sf, si)
                        done = True
                        break
    return change


@kernel
def _run(
    x: np.ndarray,
    tot: np.ndarray,
    var: np.ndarray,
    cnt: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    delta: float,
    clock: int,
    cap: int,
    min_len: int,
    grace: int,
    fired: np.ndarray,
) -> int:
    nf = 0
    for j in range(x.shape[0]):
        if si[_DETECTED]:
            tot[:, :] = 0.0
            var[:, :] = 0.0
            cnt[:] = 0
            sf[:] = 0.0
            si[_ROWS] = 1
            si[_TICK] = 0
            si[_DETECTED] = 0
        value = x[j]
        row0 = cnt[0]
        tot[0, row0] = value
        var[0, row0] = 0.0
        cnt[0] = row0 + 1
        sf[_WIDTH] += 1.0
        width = sf[_WIDTH]
        if width > 1.0:
            prev = sf[_TOTAL] / (width - 1.0)
            sf[_VARIANCE] += (width - 1.0) * (value - prev) * (value - prev) / width
        sf[_TOTAL] += value
        _compress(tot, var, cnt, si, cap)
        if _detect(tot, var, cnt, sf, si, delta, clock, min_len, grace):
            si[_DETECTED] = 1
            si[_DETECTIONS] += 1
            fired[nf] = j
            nf += 1
    return nf


class ADWIN:
    """Adaptive windowing change detector on a stream of floats (River's parameters).

    >>> rng = np.random.default_rng(0)
    >>> d = ADWIN()
    >>> d.update_many(np.r_[rng.normal(0, 0.1, 1000), rng.normal(1, 0.1, 1000)]).tolist()
    [1023]
    """

    def __init__(
        self,
        delta: float = 0.002,
        *,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._reset()

    def _reset(self) -> None:
        self._tot = np.zeros((ROWS, self.max_buckets + 1), dtype=np.float64)
        self._var = np.zeros((ROWS, self.max_buckets + 1), dtype=np.float64)
        self._cnt = np.zeros(ROWS, dtype=np.int64)
        self._sf = np.zeros(3, dtype=np.float64)
        self._si = np.zeros(4, dtype=np.int64)
        self._si[_ROWS] = 1

    def update_many(self, values: np.ndarray) -> np.ndarray:
        """Feed ``values`` in order; returns the positions whose value raised a detection."""
        x = np.ascontiguousarray(values, dtype=np.float64)
        fired = np.empty(len(x), dtype=np.int64)
        n = _run(
            x, self._tot, self._var, self._cnt, self._sf, self._si, float(self.delta),
            int(self.clock), int(self.max_buckets), int(self.min_window_length),
            int(self.grace_period), fired,
        )  # fmt: skip
        return fired[:n]

    def update(self, value: float) -> None:
        self.update_many(np.array([value], dtype=np.float64))

    @property
    def drift_detected(self) -> bool:
        """Whether the last value raised a detection."""
        return bool(self._si[_DETECTED])

    @property
    def n_detections(self) -> int:
        return int(self._si[_DETECTIONS])

    @property
    def width(self) -> int:
        return int(self._sf[_WIDTH])

    @property
    def total(self) -> float:
        return float(self._sf[_TOTAL])

    @property
    def variance(self) -> float:
        return float(self._sf[_VARIANCE])

    @property
    def estimation(self) -> float:
        """Mean of the values in the current window (0 when it is empty)."""
        width = self._sf[_WIDTH]
        return float(self._sf[_TOTAL] / width) if width else 0.0
