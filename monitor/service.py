"""Running the monitor in the background: an asyncio service or a blocking loop.

All monitor work (DuckDB, numba, HTTP deliveries) runs on one worker thread, never on the
event loop. ``MonitorService.start()`` / ``aclose()`` fit a Litestar lifespan or
``mlgate serve --role monitor``; ``run(stop_event)`` is the blocking form for a CLI.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading

    from monitor.monitor import Monitor, PassResult

log = logging.getLogger(__name__)


class MonitorService:
    """Calls ``monitor.run_once()`` every ``interval_s`` seconds until closed."""

    def __init__(
        self, monitor: Monitor, *, interval_s: float | None = None, close_monitor: bool = True
    ) -> None:
        self.monitor = monitor
        self.interval_s = interval_s if interval_s is not None else monitor.config.interval_s
        self.close_monitor = close_monitor
        self.passes = 0
        self.failures = 0
        self.last: PassResult | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-monitor")

    def _one_pass(self) -> None:
        try:
            self.last = self.monitor.run_once()
            self.passes += 1
        except Exception:  # a pass that fails is logged and counted; the next one retries
            self.failures += 1
            log.exception("monitor pass failed")

    async def start(self) -> None:
        """Start the periodic loop on the running event loop."""
        if self._task is not None:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="mlgate-monitor")

    async def _loop(self) -> None:
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            await loop.run_in_executor(self._executor, self._one_pass)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass

    async def aclose(self) -> None:
        """Stop after the pass in progress, then release the monitor."""
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await self._task
            self._task = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._shutdown)
        self._executor.shutdown(wait=True)

    def _shutdown(self) -> None:
        if self.close_monitor:
            self.monitor.close()

    def run(self, stop_event: threading.Event) -> None:
        """Blocking loop on the calling thread until ``stop_event`` is set."""
        try:
            while not stop_event.is_set():
                self._one_pass()
                stop_event.wait(self.interval_s)
        finally:
            self._shutdown()
            self._executor.shutdown(wait=False)
