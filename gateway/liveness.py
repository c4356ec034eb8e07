"""Tell the registry which route generation this gateway serves, and what it failed to load.

The hot-loading watcher calls :meth:`GatewayReporter.observe` with each model's current state
on every poll; a report is written when something changed (a new generation, a version loaded
or failed) and otherwise every ``heartbeat_s`` seconds, so ``mlgate rollout status`` lists the
gateway as live and ``mlgate rollout start`` learns at once when a version cannot load here.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from registry.gateways import report_gateway

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from registry.model import Route

log = logging.getLogger(__name__)


class ServedState(Protocol):
    """What the reporter reads from a gateway's per-model state."""

    @property
    def name(self) -> str: ...
    @property
    def route(self) -> Route | None:
        """The route as applied from the registry."""

    @property
    def versions(self) -> Mapping[int, Any]:
        """Versions loaded and warm."""

    @property
    def failures(self) -> Mapping[int, str]:
        """Version -> why it failed to load."""


class GatewayReporter:
    """Writes this gateway's report per model; cheap to call on every watcher poll."""

    def __init__(
        self,
        registry: Any,
        gateway_id: str,
        *,
        heartbeat_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.gateway_id = gateway_id
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self._last: dict[str, tuple[float, object]] = {}
        self.reports_written = 0
        self.report_errors = 0

    def report(
        self,
        name: str,
        *,
        generation: int,
        versions: Mapping[int, str],
        errors: Mapping[int, str],
    ) -> bool:
        """Write the report if it changed or the heartbeat is due; True when written.
        A failed write is logged and counted, never raised: serving goes on."""
        content = (generation, tuple(sorted(versions.items())), tuple(sorted(errors.items())))
        now = self.clock()
        last = self._last.get(name)
        if last is not None and last[1] == content and now - last[0] < self.heartbeat_s:
            return False
        try:
            report_gateway(
                self.registry,
                name,
                self.gateway_id,
                generation=generation,
                versions=versions,
                errors=errors,
            )
        except Exception as exc:  # noqa: BLE001 - the registry may be down: keep serving
            self.report_errors += 1
            log.warning("gateway report for %r failed: %s: %s", name, type(exc).__name__, exc)
            return False
        self._last[name] = (now, content)
        self.reports_written += 1
        return True

    def observe(self, state: ServedState) -> bool:
        """Report a model's state (``ModelState`` of the hot-loader)."""
        if state.route is None:
            return False
        versions = {v: "ready" for v in state.versions}
        versions.update({v: "failed" for v in state.failures})
        return self.report(
            state.name,
            generation=state.route.generation,
            versions=versions,
            errors=dict(state.failures),
        )
