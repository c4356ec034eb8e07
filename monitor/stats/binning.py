"""Counting values into frozen reference-quantile bins (the hot loop of the monitor).

Bins for sorted unique boundaries ``B[0..m-1]`` (``B[0]`` = reference minimum, ``B[m-1]`` =
reference maximum)::

    0        x < B[0]                      underflow
    k        B[k-2] < x <= B[k-1]          k = 1..m (bin 1 holds x == B[0])
    m + 1    x > B[m-1]                    overflow

NaN and +-inf count as null. A uniform lookup table over ``[B[0], B[m-1]]`` narrows the
binary search to a few boundaries, so a value costs a few nanoseconds whatever ``m`` is.
"""

from __future__ import annotations

import numpy as np

from kernels import kernel

LUT_FACTOR = 32


class BinCounts:
    """Counts of one column in one window: ``counts[m + 2]`` plus null and tail sums.

    int32, as the store keeps them (``window_counts.cum`` is ``INTEGER[]``): a segment of
    1M rows in the default 1,000-row windows holds 1,000 windows x 36 columns of these
    until it commits (150 MiB at int32, 300 at int64).
    """

    __slots__ = ("counts", "nulls", "under_sum", "over_sum", "total", "total_sq")

    def __init__(self, n_bins: int) -> None:
        self.counts = np.zeros(n_bins, dtype=np.int32)
        self.nulls = 0
        self.under_sum = 0.0
        self.over_sum = 0.0
        self.total = 0.0
        self.total_sq = 0.0


def build_lookup(boundaries: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Lookup table ``lut[c]`` = first boundary index >= start of cell ``c``.

    >>> lut, lo, scale = build_lookup(np.array([0.0, 1.0, 2.0]))
    >>> int(lut[0]), int(lut[-1])
    (0, 2)
    """
    m = len(boundaries)
    lo = float(boundaries[0])
    span = float(boundaries[-1]) - lo
    cells = max(1, LUT_FACTOR * m)
    scale = cells / span if span > 0 else 0.0
    if not np.isfinite(scale) or scale > 1e300:
        scale = 0.0  # subnormal span: plain binary search over all boundaries
    starts = lo + np.arange(cells + 1, dtype=np.float64) / scale if scale > 0 else np.array([lo])
    lut = np.searchsorted(boundaries, starts, side="left").astype(np.int32)
    return lut, lo, scale


@kernel
def _count_kernel(  # noqa: C901 - one tight loop, kept in one piece for speed
    x: np.ndarray,
    boundaries: np.ndarray,
    lut: np.ndarray,
    lo: float,
    scale: float,
    counts: np.ndarray,
    sums: np.ndarray,
) -> int:
    m = boundaries.shape[0]
    hi = boundaries[m - 1]
    cells = lut.shape[0] - 1
    nulls = 0
    under = 0.0
    over = 0.0
    total = 0.0
    total_sq = 0.0
    for j in range(x.shape[0]):
        v = x[j]
        if not np.isfinite(v):
            nulls += 1
            continue
        total += v
        total_sq += v * v
        if v < lo:
            counts[0] += 1
            under += v
            continue
        if v > hi:
            counts[m + 1] += 1
            over += v
            continue
        if scale > 0.0:
            t = (v - lo) * scale
            c = int(t) if t < cells else cells - 1
            if c < 0:
                c = 0
            a = lut[c]
            b = lut[c + 1]
            if b > m - 1:
                b = m - 1
        else:
            a = 0
            b = m - 1
        # first index i in [a, b] with boundaries[i] >= v
        while a < b:
            mid = (a + b) >> 1
            if boundaries[mid] < v:
                a = mid + 1
            else:
                b = mid
        while a > 0 and boundaries[a - 1] >= v:
            a -= 1
        while a < m - 1 and boundaries[a] < v:
            a += 1
        counts[a + 1] += 1
    sums[0] += under
    sums[1] += over
    sums[2] += total
    sums[3] += total_sq
    return nulls


class NumericBinner:
    """Counts float values into the bins of frozen ``boundaries`` (see module docstring)."""

    def __init__(self, boundaries: np.ndarray) -> None:
        self.boundaries = np.ascontiguousarray(boundaries, dtype=np.float64)
        if self.boundaries.ndim != 1 or len(self.boundaries) == 0:
            raise ValueError(f"boundaries: expected a non-empty 1-D array, got {boundaries!r}")
        self.lut, self.lo, self.scale = build_lookup(self.boundaries)

    @property
    def n_bins(self) -> int:
        return len(self.boundaries) + 2

    def count(self, x: np.ndarray, into: BinCounts) -> None:
        sums = np.zeros(4, dtype=np.float64)
        values = np.ascontiguousarray(x, dtype=np.float64)
        nulls = _count_kernel(
            values, self.boundaries, self.lut, self.lo, self.scale, into.counts, sums
        )
        into.nulls += int(nulls)
        into.under_sum += float(sums[0])
        into.over_sum += float(sums[1])
        into.total += float(sums[2])
        into.total_sq += float(sums[3])

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """Bin of each value (-1 for null); the slow reference used by tests and oracles.

        >>> NumericBinner(np.array([0.0, 1.0])).bin_index(np.array([-1.0, 0.0, 0.5, 2.0]))
        array([0, 1, 2, 3])
        """
        values = np.asarray(x, dtype=np.float64)
        idx = np.searchsorted(self.boundaries, values, side="left") + 1
        idx = np.where(values < self.boundaries[0], 0, idx)
        idx = np.where(values > self.boundaries[-1], len(self.boundaries) + 1, idx)
        return np.where(np.isfinite(values), idx, -1)


def categorical_codes(values: list[object] | np.ndarray, categories: list[str]) -> np.ndarray:
    """Code of each value: 1 + position in ``categories``, 0 for unseen, -1 for null.

    >>> categorical_codes(["b", None, "z"], ["a", "b"]).tolist()
    [2, -1, 0]
    """
    index = {c: i + 1 for i, c in enumerate(categories)}
    return np.array([-1 if v is None else index.get(str(v), 0) for v in values], dtype=np.int64)
