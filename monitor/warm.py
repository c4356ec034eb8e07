"""Compile the monitor's numba kernels once (``mlgate kernels warm``, run by ``make``'s
install), so that numba's on-disk cache holds them before the first monitor pass."""

from __future__ import annotations

import time

import numpy as np

from monitor.detectors.adwin import ADWIN
from monitor.stats.binning import BinCounts, NumericBinner


def warm_kernels() -> dict[str, float]:
    """Run each kernel on a few values; returns the seconds each family took."""
    seconds: dict[str, float] = {}
    values = np.linspace(-1.0, 1.0, 64)
    start = time.perf_counter()
    binner = NumericBinner(np.array([-0.5, 0.0, 0.5]))
    binner.count(values, BinCounts(binner.n_bins))
    seconds["binning"] = time.perf_counter() - start
    start = time.perf_counter()
    ADWIN().update_many(values)
    seconds["adwin"] = time.perf_counter() - start
    return seconds
