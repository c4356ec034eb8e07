"""Where the dashboard reads from: the registry, the log store and the monitor's DuckDB file.

The monitor holds its file between passes only briefly and DuckDB allows one writer process,
so every read opens the file read-only, reads, and closes it at once. Figures are reused for
``cache_s`` seconds (pages and their JSON refresh every few seconds; a burst of readers costs
one computation).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dashboard.logstats import LogReader

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dashboard.settings import DashboardSettings
    from monitor.store import MonitorStore
    from registry import Registry

T = TypeVar("T")
log = logging.getLogger(__name__)


class MonitorUnavailable(RuntimeError):
    """The monitor's state could not be read (no file yet, or held by the monitor)."""


class TtlCache:
    """Values by key, fresh for ``ttl_s`` seconds, then served stale while one background
    thread recomputes them (stale-while-revalidate): a page that refreshes every few seconds
    never waits for a figure it saw a moment ago. A value older than ``max_stale_s`` (or
    never computed) is computed on the caller's thread."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_stale_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self.clock = clock
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._refreshing: set[tuple[Any, ...]] = set()
        # one refresh at a time: the CPU left is the requests' (a request that needs a value
        # still queued computes it itself, and the queued refresh then finds it fresh)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-refresh")

    def get(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        if self.ttl_s <= 0:
            return compute()
        hit = self._values.get(key)
        if hit is not None:
            age = self.clock() - hit[0]
            if age < self.ttl_s:
                return hit[1]  # type: ignore[no-any-return]
            if age < self.ttl_s + self.max_stale_s:
                self._refresh(key, compute)
                return hit[1]  # type: ignore[no-any-return]
        return self._compute(key, compute)

    def peek(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any | None:
        """The value if there is one fresh enough to show (a stale one is refreshed in the
        background); otherwise None, with the value computed in the background, so that a
        page can show its frame at once and fetch the figures when they are ready."""
        if self.ttl_s <= 0:
            return None
        hit = self._values.get(key)
        if hit is not None:
            age = self.clock() - hit[0]
            if age < self.ttl_s:
                return hit[1]
            if age < self.ttl_s + self.max_stale_s:
                self._refresh(key, compute)
                return hit[1]
        self._refresh(key, compute)
        return None

    def _compute(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:  # one computation per key at a time; the others wait and reuse it
            hit = self._values.get(key)
            if hit is not None and self.clock() - hit[0] < self.ttl_s:
                return hit[1]  # type: ignore[no-any-return]
            value = compute()
            with self._lock:
                if len(self._values) > 1024:  # bounded: old parameter combinations go first
                    self._values.clear()
                self._values[key] = (self.clock(), value)
            return value

    def _refresh(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                self._compute(key, compute)
            except Exception:  # noqa: BLE001 - the next caller computes it and sees the error
                log.exception("dashboard: refreshing %s failed", key)
                with self._lock:
                    self._values.pop(key, None)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        self._pool.submit(run)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class Sources:
    """The registry, the log reader and the monitor file of one installation."""

    def __init__(
        self,
        registry: Registry,
        *,
        logs_url: str | None,
        monitor_db: str | Path | None,
        settings: DashboardSettings,
    ) -> None:
        self.registry = registry
        self.logs = LogReader(
            logs_url, keep_s=max(settings.traffic_window_s, settings.series_window_s)
        )
        self.monitor_db = Path(monitor_db) if monitor_db else None
        self.settings = settings
        self.cache = TtlCache(settings.cache_s)

    @contextmanager
    def monitor(self) -> Iterator[MonitorStore]:
        """A read-only view of the monitor's state, closed on exit."""
        from monitor.store import MonitorStore, StoreBusy

        if self.monitor_db is None or not self.monitor_db.exists():
            raise MonitorUnavailable(
                f"no monitor state at {self.monitor_db} yet (the monitor has not run)"
            )
        try:
            store = MonitorStore(
                self.monitor_db, read_only=True, wait_s=self.settings.monitor_wait_s, threads=1
            )
        except StoreBusy as exc:
            raise MonitorUnavailable(str(exc)) from exc
        try:
            yield store
        finally:
            store.close()

    def read_monitor(self, key: tuple[Any, ...], read: Callable[[MonitorStore], T]) -> T:
        """``read(store)`` on the monitor's state, cached under ``key``."""

        def compute() -> T:
            with self.monitor() as store:
                return read(store)

        return self.cache.get(("monitor", *key), compute)
