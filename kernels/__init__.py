"""``kernel``: the one numba decorator of mlgate (the gateway's runtimes and the monitor).

``numba.njit(nogil=True, cache=True)``: ``nogil`` lets threads (the gateway's batchers, the
monitor's workers) run kernels at once; ``cache`` keeps the compiled machine code on disk, so
a fresh process loads a kernel instead of compiling it again (~0.4 s of LLVM work each).

numba keeps the cache next to the source (``__pycache__``), else under the user's cache
directory, or under ``NUMBA_CACHE_DIR``. Where none of them is writable (a read-only install
with no writable home, and no ``NUMBA_CACHE_DIR``) numba refuses ``cache=True`` when the
function is decorated; the kernel is then compiled in memory, as it would be without the
cache, instead of failing the import. numba's cache is keyed on each kernel's own source
file: after editing a module that others call into, clear ``*.nbi``/``*.nbc`` in
``__pycache__``.

This package imports only numba and numpy, so every part may use it.

>>> import numpy as np
>>> @kernel
... def total(x):
...     s = 0.0
...     for v in x:
...         s += v
...     return s
>>> total(np.arange(4.0))
6.0
>>> @kernel(fastmath={"reassoc"})
... def dot(a, b):
...     return (a * b).sum()
>>> dot(np.ones(3), np.arange(3.0))
3.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["kernel"]


@overload
def kernel(fn: F, /) -> F: ...


@overload
def kernel(
    *, parallel: bool = False, fastmath: set[str] | bool | None = None
) -> Callable[[F], F]: ...


def kernel(
    fn: F | None = None, /, *, parallel: bool = False, fastmath: set[str] | bool | None = None
) -> F | Callable[[F], F]:
    """Compile ``fn`` with ``njit(nogil=True, cache=True)``; ``@kernel`` or ``@kernel(...)``.

    ``parallel`` and ``fastmath`` are numba's options of the same names.
    """

    def wrap(f: F) -> F:
        options: dict[str, Any] = {"nogil": True, "parallel": parallel}
        options["fastmath"] = fastmath or False
        try:
            return cast("F", njit(cache=True, **options)(f))
        except RuntimeError as exc:  # "cannot cache function ...: no locator available ..."
            if "cannot cache" not in str(exc):
                raise
            return cast("F", njit(**options)(f))

    return wrap(fn) if fn is not None else wrap
