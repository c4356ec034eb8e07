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

A fresh install compiles nothing on first use: ``mlgate kernels warm`` (run by ``make``'s
install step) compiles every kernel family once into that cache; ``cache_stats`` tells, per
kernel, how many signatures a process loaded from the cache and how many it compiled.

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from numba import njit
from numba.core.dispatcher import Dispatcher

if TYPE_CHECKING:
    from types import ModuleType

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["CacheStats", "cache_stats", "kernel"]


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


@dataclass(frozen=True)
class CacheStats:
    """One kernel's signatures this process loaded from numba's cache (``hits``) or compiled
    (``misses``: not in the cache, or no cache at all), and where its cache lives (``None``:
    no writable cache directory, the kernel is compiled in memory each time)."""

    kernel: str
    hits: int
    misses: int
    cache_path: str | None


def cache_stats(modules: Iterable[ModuleType]) -> list[CacheStats]:
    """``CacheStats`` of every kernel defined in ``modules`` that this process has used
    (numba's ``Dispatcher.stats``).

    >>> import sys
    >>> [s.kernel for s in cache_stats([sys.modules[__name__]])]
    []
    """
    found: list[CacheStats] = []
    for module in modules:
        for name, obj in sorted(vars(module).items()):
            if not isinstance(obj, Dispatcher) or obj.py_func.__module__ != module.__name__:
                continue
            stats = obj.stats
            hits, misses = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
            if hits or misses:
                path = str(stats.cache_path) if stats.cache_path else None
                found.append(CacheStats(f"{module.__name__}.{name}", hits, misses, path))
    return found
