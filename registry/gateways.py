"""Gateway liveness: which route generation each gateway serves, and what it failed to load.

Each gateway (one per worker process) rewrites its own small file after every route change
it applies and every few seconds while alive::

    <registry>/models/<name>/gateways/<gateway_id>.json

A gateway is *live* while its last report is younger than ``max_age_s``. ``mlgate rollout
status`` shows the live gateways' generations, and rollout actions refuse to route traffic to
a version that a live gateway reports as failed to load (with the gateway's reason).
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from registry.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registry import Registry

GATEWAYS_DIR = "gateways"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class GatewayState(msgspec.Struct, frozen=True):
    """One gateway's last report for one model."""

    gateway_id: str
    model: str
    generation: int
    versions: dict[int, str] = {}  # version -> "loading" | "ready" | "failed" | "draining" …
    errors: dict[int, str] = {}  # version -> why it failed to load
    reported_at: str = ""
    host: str | None = None
    pid: int | None = None

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since the report (infinite when the stamp cannot be read)."""
        try:
            at = datetime.fromisoformat(self.reported_at.replace("Z", "+00:00"))
        except ValueError:
            return float("inf")
        return ((now or datetime.now(UTC)) - at).total_seconds()


def _dir(name: str) -> str:
    return f"models/{name}/{GATEWAYS_DIR}"


def report_gateway(
    reg: Registry,
    name: str,
    gateway_id: str,
    *,
    generation: int,
    versions: Mapping[int, str],
    errors: Mapping[int, str],
) -> GatewayState:
    """Write (atomically replace) ``gateway_id``'s report for model ``name``.

    ``versions`` maps each version the gateway holds to its state; ``errors`` maps each version
    that failed to load to the reason. Call it after applying a route and every few seconds.
    """
    if not _ID.match(gateway_id):
        raise RegistryError(f"gateway id must match {_ID.pattern}, got {gateway_id!r}")
    state = GatewayState(
        gateway_id=gateway_id,
        model=name,
        generation=int(generation),
        versions={int(v): str(s) for v, s in versions.items()},
        errors={int(v): str(e) for v, e in errors.items()},
        reported_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    # one atomic replace (temp + rename locally, one PUT on S3): never half a file
    reg.store.write(f"{_dir(name)}/{gateway_id}.json", msgspec.json.encode(state))
    return state


def gateway_states(reg: Registry, name: str, *, max_age_s: float = 30.0) -> list[GatewayState]:
    """The live gateways' reports for ``name`` (younger than ``max_age_s``), by gateway id.

    Unreadable or stale reports are skipped; no report at all is an empty list.
    """
    store = reg.store
    directory = _dir(name)
    now = datetime.now(UTC)
    out: list[GatewayState] = []
    for entry in store.children(directory):
        if not entry.endswith(".json"):
            continue
        try:
            state = msgspec.json.decode(store.read(f"{directory}/{entry}"), type=GatewayState)
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # removed meanwhile, or not ours: a report is advisory
        if state.age_s(now) <= max_age_s:
            out.append(state)
    return sorted(out, key=lambda s: s.gateway_id)


def failed_versions(reg: Registry, name: str, *, max_age_s: float = 30.0) -> dict[int, str]:
    """Versions that some live gateway failed to load, with ``"<gateway>: <reason>"``."""
    return failures(gateway_states(reg, name, max_age_s=max_age_s))


def failures(states: list[GatewayState]) -> dict[int, str]:
    """``failed_versions`` of reports already read."""
    failed: dict[int, str] = {}
    for state in states:
        for version, reason in state.errors.items():
            failed.setdefault(version, f"{state.gateway_id}: {reason}")
    return failed
