"""``kernel``: the monitor's numba decorator, with numba's on-disk cache when it can have one.

``cache=True`` lets a fresh process (``mlgate monitor run --once``, a restarted service)
load the compiled kernels instead of compiling them again (~0.4 s and ~55 MiB of LLVM work
per process). numba keeps the cache next to the source (``__pycache__``), else under the
user's cache directory (or ``NUMBA_CACHE_DIR``); where none of them is writable (a read-only
install with no writable home) numba refuses ``cache=True`` at import time, so the kernel
is then compiled in memory as without the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def kernel(fn: F) -> F:
    """``numba.njit(nogil=True, cache=True)``, or without the cache where it has no place."""
    try:
        compiled = njit(nogil=True, cache=True)(fn)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available ..."
        if "cannot cache" not in str(exc):
            raise
        compiled = njit(nogil=True)(fn)
    return compiled  # type: ignore[no-any-return]


def preload() -> None:
    """Load (or compile) every kernel a pass calls, with the argument types it calls them
    with: the first use in a process costs ~0.3 s of LLVM set-up even from the cache.

    The monitor runs this on an idle worker thread when it starts; llvmlite releases the
    GIL, so the set-up overlaps the pass's first steps (listing segments, building
    profiles) instead of stalling its first batch. numba's compiler lock makes a kernel
    called meanwhile wait for it rather than load it twice.
    """
    import numpy as np

    from monitor.adwin import ADWIN
    from monitor.binning import BinCounts, NumericBinner

    binner = NumericBinner(np.array([-1.0, 0.0, 1.0]))
    values = np.linspace(-2.0, 2.0, 64)
    binner.count(values, BinCounts(binner.n_bins))
    values.flags.writeable = False  # columns read zero-copy from Arrow are read-only
    binner.count(values, BinCounts(binner.n_bins))
    ADWIN().update_many(np.linspace(0.0, 1.0, 64))
