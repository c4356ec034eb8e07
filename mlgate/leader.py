"""Run a singleton role's passes only while this process holds its lease in the registry.

``mlgate monitor run`` (and ``serve --role monitor``) wrap the monitor's passes in a
:class:`LeaderLoop`: a keeper thread takes or renews the registry lease every ``ttl_s / 3``,
and the pass loop runs a pass only while the lease is held. A second monitor started by
mistake stays on standby (it reads and counts nothing, sends no alert) and takes over within
``ttl_s`` once the first one dies, or at once when it stops cleanly and releases the lease.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client.metrics_core import Metric

    from registry import Lease

log = logging.getLogger(__name__)


class LeaderLoop:
    """Calls ``run_pass()`` every ``interval_s`` seconds while ``lease`` is held.

    ``role`` names the metrics (``mlgate_<role>_lease_held`` …); register the loop itself as a
    Prometheus collector to export them.
    """

    def __init__(
        self,
        lease: Lease,
        run_pass: Callable[[], Any],
        *,
        interval_s: float,
        role: str,
        renew_every_s: float | None = None,
    ) -> None:
        self.lease = lease
        self.run_pass = run_pass
        self.interval_s = interval_s
        self.role = role
        self.renew_every_s = renew_every_s if renew_every_s is not None else lease.ttl_s / 3
        self.passes = 0
        self.failures = 0
        self.lease_errors = 0
        self.last_pass_at: float | None = None  # Unix seconds of the last pass that succeeded
        self._wake = threading.Event()

    # -- keeper -----------------------------------------------------------------------------
    def _keep(self, stop: threading.Event) -> None:
        was_held = False
        first = True
        while not stop.is_set():
            try:
                held = self.lease.acquire()
            except Exception as exc:  # noqa: BLE001 - the store may be down: retry, count
                self.lease_errors += 1
                held = self.lease.held
                log.warning(
                    "%s: cannot renew the lease: %s: %s", self.role, type(exc).__name__, exc
                )
            if held and not was_held:
                log.info("%s: holding the lease (term %d)", self.role, self.lease.term)
                self._wake.set()
            elif was_held and not held:
                log.warning("%s: lost the lease; standing by", self.role)
            elif not held and first:
                log.info("%s: standing by; %s", self.role, self._holder())
            first = False
            was_held = held
            stop.wait(self.renew_every_s)

    def _holder(self) -> str:
        try:
            return self.lease.describe()
        except Exception as exc:  # noqa: BLE001 - a description is best effort
            return f"lease {self.lease.name!r}: unreadable ({type(exc).__name__})"

    # -- passes -----------------------------------------------------------------------------
    def _one_pass(self) -> None:
        try:
            self.run_pass()
        except Exception:  # a failed pass is logged and counted; the next one retries
            self.failures += 1
            log.exception("%s pass failed", self.role)
            return
        self.passes += 1
        self.last_pass_at = time.time()

    def run(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set; then release the lease (a standby takes over at once)."""
        keeper = threading.Thread(
            target=self._keep, args=(stop,), name=f"mlgate-{self.role}-lease", daemon=True
        )
        keeper.start()
        try:
            while not stop.is_set():
                if self.lease.held:
                    self._one_pass()
                    stop.wait(self.interval_s)
                else:
                    self._wake.clear()
                    self._wake.wait(self.renew_every_s)  # until the keeper takes the lease
        finally:
            keeper.join(30)
            try:
                if self.lease.release():
                    log.info("%s: released the lease", self.role)
            except Exception as exc:  # noqa: BLE001 - it expires by itself anyway
                log.warning("%s: cannot release the lease: %s", self.role, exc)

    # -- metrics ----------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """Prometheus collector: lease state and pass counts of this process."""
        prefix = f"mlgate_{self.role}"
        held = GaugeMetricFamily(
            f"{prefix}_lease_held", f"1 while this {self.role} holds its lease and works"
        )
        held.add_metric([], 1.0 if self.lease.held else 0.0)
        yield held
        term = GaugeMetricFamily(f"{prefix}_lease_term", "Lease term this process last held")
        term.add_metric([], float(self.lease.term))
        yield term
        passes = CounterMetricFamily(
            f"{prefix}_passes", "Passes run, by outcome", labels=["outcome"]
        )
        passes.add_metric(["ok"], float(self.passes))
        passes.add_metric(["failed"], float(self.failures))
        yield passes
        errors = CounterMetricFamily(
            f"{prefix}_lease_errors", "Lease renewals that failed to reach the registry"
        )
        errors.add_metric([], float(self.lease_errors))
        yield errors
        last = GaugeMetricFamily(
            f"{prefix}_last_pass_timestamp_seconds",
            "Unix time of the last successful pass (0: none yet)",
        )
        last.add_metric([], self.last_pass_at or 0.0)
        yield last
