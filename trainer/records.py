"""Run records: one JSON object per run in the registry, so every process sees the history.

Layout::

    models/<name>/trainer/runs/<run_id>.json     rewritten as the run moves through its stages

``run_id`` sorts by start time (``r<UTC yyyymmddThhmmss.ffffff>-<random>``).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from registry import Registry

Status = Literal["running", "registered", "passed", "rejected", "skipped", "failed"]
STAGES = ("data", "fit", "evaluate", "register", "rollout")
ENDED = ("registered", "passed", "rejected", "skipped", "failed")


class Trigger(msgspec.Struct, frozen=True, omit_defaults=True):
    """What started a run: an alert from the audit trail, a command or the schedule."""

    kind: Literal["alert", "manual", "schedule"]
    alert_id: str | None = None
    event: str | None = None  # the alert's event kind (model.drift.detected …)
    at: str | None = None  # when the alert was raised / the command given
    since: str | None = None  # the start of the window the alert names (its first row)

    @property
    def label(self) -> str:
        """One word for tables: the alert id, ``manual`` or ``schedule``."""
        return self.alert_id if self.kind == "alert" and self.alert_id else self.kind


class RunRecord(msgspec.Struct, kw_only=True):
    """Everything known about one run; ``version`` is the version it registered, or None."""

    run_id: str
    model: str
    trigger: Trigger
    status: Status = "running"
    stage: str = "data"
    reason: str | None = None
    attempt: int = 1
    owner: str = ""
    started_at: str = ""
    finished_at: str | None = None
    dry_run: bool = False
    champion_version: int | None = None
    version: int | None = None
    recipe: str | None = None
    metric: str | None = None
    rows: dict[str, int] = {}
    time_range: dict[str, str | None] = {}
    data_fingerprint: str | None = None
    metrics: dict[str, dict[str, float]] = {}
    gate: dict[str, Any] = {}
    candidates: list[dict[str, Any]] = []
    timings_s: dict[str, float] = {}
    rollout: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """An ISO-8601 UTC stamp as an aware datetime.

    >>> parse_time("2026-12-03T07:00:00Z").hour
    7
    """
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    return f"r{stamp}-{secrets.token_hex(3)}"


def owner_id() -> str:
    """This process, as written into leases and records: ``<host>-<pid>``."""
    return f"{os.uname().nodename}-{os.getpid()}"


class RunStore:
    """Reads and writes run records under ``models/<name>/trainer/runs/``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @staticmethod
    def key(model: str, run_id: str) -> str:
        return f"models/{model}/trainer/runs/{run_id}.json"

    def save(self, record: RunRecord) -> None:
        self.registry.store.write(
            self.key(record.model, record.run_id), msgspec.json.encode(record)
        )

    def get(self, model: str, run_id: str) -> RunRecord | None:
        try:
            data = self.registry.store.read(self.key(model, run_id))
        except FileNotFoundError:
            return None
        return msgspec.json.decode(data, type=RunRecord)

    def history(self, model: str) -> list[RunRecord]:
        """Every run of ``model``, oldest first."""
        prefix = f"models/{model}/trainer/runs"
        names = [k for k in self.registry.store.keys(prefix) if k.endswith(".json")]
        found = self.registry.store.read_many([f"{prefix}/{k}" for k in names])
        records = []
        for data in found.values():
            try:
                records.append(msgspec.json.decode(data, type=RunRecord))
            except msgspec.DecodeError:
                continue  # a record from a newer or broken writer is left out, not fatal
        return sorted(records, key=lambda r: r.run_id)
