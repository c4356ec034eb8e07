"""The one decorator every kernel uses: ``njit(nogil=True, cache=True)``, typed for mypy.

``nogil`` lets batcher threads run kernels at once; ``cache`` keeps compiled machine code in
``__pycache__`` (one generic kernel per model family: the model is data, so the cache serves
every model of the family). numba's cache is keyed on each kernel's own source file: after
editing a module that others call into, clear ``*.nbi``/``*.nbc`` in ``__pycache__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def kernel(*, parallel: bool = False, fastmath: set[str] | None = None) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        compiled = njit(nogil=True, cache=True, parallel=parallel, fastmath=fastmath or False)
        return cast("F", compiled(fn))

    return wrap
