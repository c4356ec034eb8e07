"""Handing freed memory back to the operating system between segments.

Counting a segment allocates and frees a few hundred MiB (Arrow batches, numpy columns,
prediction rows), on several threads. Both allocators keep freed pages for reuse: Arrow's
pool (mimalloc or jemalloc) until asked, glibc per thread arena until trimmed. Without
this the resident size ratchets up segment after segment (measured: ~150 MiB over ten
1M-row segments); with it, each segment starts from what is really in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Callable


def _glibc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    return trim


class MemoryReleaser:
    """``release()`` returns unused Arrow pool pages and trims glibc's heaps (where present).

    >>> MemoryReleaser().release()
    """

    def __init__(self) -> None:
        self._trim = _glibc_trim()

    def release(self) -> None:
        pa.default_memory_pool().release_unused()
        if self._trim is not None:
            self._trim(0)
