"""Who runs what: one state object per model in the registry, changed by compare-and-swap.

Layout::

    models/<name>/trainer/state.json    cursor into events.jsonl, handled alert ids, the lease

Every decision a trainer takes for a model (start a run for an alert, absorb an alert, take
over an abandoned run, finish) is a change of this object through the store's
compare-and-swap (``write_if`` on the tag read with it: an ``fcntl``-locked rename locally,
``If-Match`` on S3). Two trainers that see the same alert both compute the change; only one
write wins, the other re-reads, finds the alert handled, and does nothing: one alert, one run.

A lease (``expires_at``, wall-clock seconds) is renewed while its run is alive; a trainer that
was killed stops renewing it, and the next trainer that finds it expired takes the run over
(as a new attempt of the same trigger) or, past ``max_attempts``, gives it up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from trainer.errors import LeaseLost, TrainerError
from trainer.records import Trigger  # noqa: TC001 - msgspec resolves the annotation at run time

if TYPE_CHECKING:
    from collections.abc import Callable

    from registry import Registry

HANDLED_KEPT = 1_000  # alert ids remembered per model (older ones are behind the cursor)
_CAS_ATTEMPTS = 100


class Lease(msgspec.Struct, frozen=True):
    """A run in progress: who holds it and until when (epoch seconds)."""

    run_id: str
    owner: str
    expires_at: float
    trigger: Trigger
    attempt: int = 1


class ModelState(msgspec.Struct, frozen=True):
    """The trainer's durable state for one model."""

    cursor: int = 0  # events of events.jsonl already considered
    handled: list[str] = []  # alert ids that started or were absorbed by a run
    lease: Lease | None = None
    last_started_at: float | None = None
    last_finished_at: float | None = None
    absorbed: int = 0  # alerts absorbed (in progress, cooldown, too old), in all


class StateStore:
    """Reads and compare-and-swaps ``models/<name>/trainer/state.json``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @staticmethod
    def key(model: str) -> str:
        return f"models/{model}/trainer/state.json"

    def read(self, model: str) -> ModelState:
        found = self.registry.store.read_tagged(self.key(model))
        return msgspec.json.decode(found[0], type=ModelState) if found else ModelState()

    def update(
        self, model: str, change: Callable[[ModelState], ModelState | None]
    ) -> tuple[ModelState, ModelState | None]:
        """Apply ``change`` to the latest state until the write wins; returns (the state it
        was applied to, the new state or None when ``change`` decided to write nothing)."""
        store = self.registry.store
        key = self.key(model)
        for _ in range(_CAS_ATTEMPTS):
            found = store.read_tagged(key)
            old = msgspec.json.decode(found[0], type=ModelState) if found else ModelState()
            new = change(old)
            if new is None or new == old:
                return old, None
            if store.write_if(key, msgspec.json.encode(new), tag=found[1] if found else None):
                return old, new
            time.sleep(0.005)
        raise TrainerError(f"model {model!r}: trainer state kept changing under this writer")


def handled(state: ModelState, alert_id: str) -> ModelState:
    """``state`` with ``alert_id`` remembered (the oldest ids are forgotten past a bound)."""
    ids = [*state.handled, alert_id][-HANDLED_KEPT:]
    return msgspec.structs.replace(state, handled=ids)


def acquire(
    states: StateStore,
    model: str,
    lease: Lease,
    *,
    now: float,
) -> Lease:
    """Take the lease for a run started by a command: refused while another live run holds
    it (``RunInProgress``), granted over an expired one."""
    from trainer.errors import RunInProgress

    holder: list[Lease] = []

    def change(state: ModelState) -> ModelState | None:
        holder.clear()
        if state.lease is not None and state.lease.expires_at > now:
            holder.append(state.lease)
            return None
        return msgspec.structs.replace(state, lease=lease, last_started_at=now)

    _old, new = states.update(model, change)
    if new is None:
        busy = holder[0] if holder else None
        who = f"run {busy.run_id} by {busy.owner}" if busy else "another run"
        raise RunInProgress(f"model {model!r}: {who} is in progress; try again when it ends")
    return lease


def renew(states: StateStore, model: str, run_id: str, *, expires_at: float) -> None:
    """Extend this run's lease; ``LeaseLost`` when another trainer has taken it over."""
    lost: list[bool] = []

    def change(state: ModelState) -> ModelState | None:
        lost.clear()
        if state.lease is None or state.lease.run_id != run_id:
            lost.append(True)
            return None
        return msgspec.structs.replace(
            state, lease=msgspec.structs.replace(state.lease, expires_at=expires_at)
        )

    states.update(model, change)
    if lost:
        raise LeaseLost(f"model {model!r}: run {run_id} lost its lease to another trainer")


def release(states: StateStore, model: str, run_id: str, *, now: float) -> None:
    """End this run's lease (start of the cooldown); nothing when it is no longer ours."""

    def change(state: ModelState) -> ModelState | None:
        if state.lease is None or state.lease.run_id != run_id:
            return None
        return msgspec.structs.replace(state, lease=None, last_finished_at=now)

    states.update(model, change)
