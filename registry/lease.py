"""Leases: an expiring, named claim in the registry that one process holds at a time.

A singleton role (the monitor; the trainer may use the same primitive) takes a lease before
each pass and does the pass only while it holds it, so a second copy started by mistake waits
instead of counting every segment and sending every alert twice. The lease is one small
object, ``<registry>/leases/<name>.json``, changed only through the store's two atomic
operations:

- absent: taken by a create-only write (``If-None-Match: *`` on S3, an exclusive link locally);
- held by us: renewed by a compare-and-swap on the tag we last read (``If-Match`` on S3);
- held by another: taken over by a compare-and-swap only once its ``expires_at`` has passed
  (the holder died or stopped renewing) or its holder released it.

Two contenders for an expired lease both read the same tag; the compare-and-swap lets exactly
one of them win. Each takeover increments ``term`` (a fencing number for logs and metrics).

Expiry compares wall clocks of different machines: clocks must agree within a small part of
``ttl_s`` (NTP does; the default ``ttl_s`` of 30 s tolerates seconds of skew). A holder that
cannot reach the store to renew stops considering itself the holder at its own (monotonic)
deadline, before anybody else can take over.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from typing import TYPE_CHECKING

import msgspec

from registry.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Callable

    from registry.registry import Registry
    from registry.store import Store

LEASES_DIR = "leases"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class LeaseRecord(msgspec.Struct, frozen=True):
    """What ``leases/<name>.json`` holds: who has the lease, until when, since which term."""

    name: str
    holder: str
    term: int  # +1 at every change of holder
    expires_at: float  # holder's wall clock (Unix seconds); 0 once released
    renewed_at: float
    host: str | None = None
    pid: int | None = None

    def expired(self, now: float) -> bool:
        """True when anybody may take the lease over (released, or not renewed in time)."""
        return self.expires_at <= now


def default_holder() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable in ``leases/*.json``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Lease:
    """One process's handle on the lease ``name`` in a registry (local or S3).

    ``acquire()`` takes or renews it and says whether this process holds it now; call it
    before each unit of work and skip the work when it returns False. ``release()`` hands it
    over at once on a clean shutdown.

    Parameters
    ----------
    registry
        A :class:`registry.Registry` (or its ``store``).
    name
        Lease name, e.g. ``"monitor"``; same rule as model names.
    ttl_s
        How long a taken or renewed lease stays valid without another renewal. Renew well
        inside it: every pass of a loop whose period is under ``ttl_s / 2``.
    holder
        This process's identity (default: host, pid and a random suffix).
    """

    def __init__(
        self,
        registry: Registry | Store,
        name: str,
        *,
        ttl_s: float = 30.0,
        holder: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _NAME.match(name):
            raise RegistryError(f"lease name must match {_NAME.pattern}, got {name!r}")
        if not ttl_s > 0:
            raise RegistryError(f"lease {name!r}: ttl_s must be > 0, got {ttl_s!r}")
        self.store: Store = registry.store if hasattr(registry, "store") else registry
        self.name = name
        self.ttl_s = float(ttl_s)
        self.holder = holder or default_holder()
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.key = f"{LEASES_DIR}/{name}.json"
        self._valid_until = -float("inf")  # our own monotonic deadline
        self.term = 0
        self.acquisitions = 0  # times this process took the lease (not renewals)
        self.losses = 0  # times it found the lease taken while it thought it held it

    @property
    def held(self) -> bool:
        """True while this process holds the lease (by its own clock, no store call)."""
        return self.monotonic() < self._valid_until

    def current(self) -> LeaseRecord | None:
        """The record as stored now (None when no one ever took the lease)."""
        found = self.store.read_tagged(self.key)
        return None if found is None else self._decode(found[0])

    def _decode(self, data: bytes) -> LeaseRecord:
        try:
            return msgspec.json.decode(data, type=LeaseRecord)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"{self.store.url}/{self.key}: not a lease record: {exc}") from exc

    def _record(self, term: int, *, released: bool = False) -> bytes:
        now = self.wall_clock()
        record = LeaseRecord(
            name=self.name,
            holder=self.holder,
            term=term,
            expires_at=0.0 if released else now + self.ttl_s,
            renewed_at=now,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        return msgspec.json.encode(record)

    def acquire(self) -> bool:
        """Take the lease if free or expired, renew it if ours; True when held afterwards.

        Storage errors (the object store unreachable) propagate; ``held`` stays true until
        this process's own deadline, so a holder rides out a short outage.
        """
        started = self.monotonic()  # the deadline counts from before the write
        found = self.store.read_tagged(self.key)
        if found is None:
            won = self.store.create(self.key, self._record(1))
            return self._after(won, term=1, started=started, fresh=True)
        data, tag = found
        record = self._decode(data)
        if record.holder == self.holder:
            won = self.store.write_if(self.key, self._record(record.term), tag=tag)
            return self._after(won, term=record.term, started=started, fresh=False)
        if not record.expired(self.wall_clock()):
            return self._after(False, term=record.term, started=started, fresh=False)
        won = self.store.write_if(self.key, self._record(record.term + 1), tag=tag)
        return self._after(won, term=record.term + 1, started=started, fresh=True)

    def _after(self, won: bool, *, term: int, started: float, fresh: bool) -> bool:
        if won:
            if fresh or not self.held:
                self.acquisitions += 1
            self.term = term
            self._valid_until = started + self.ttl_s
            return True
        if self.held:
            self.losses += 1  # someone took it over while we believed we held it
        self._valid_until = -float("inf")
        return False

    def release(self) -> bool:
        """Give the lease up now (if this process holds it); True when released here."""
        found = self.store.read_tagged(self.key)
        self._valid_until = -float("inf")
        if found is None:
            return False
        record = self._decode(found[0])
        if record.holder != self.holder:
            return False
        return self.store.write_if(self.key, self._record(record.term, released=True), tag=found[1])

    def describe(self) -> str:
        """One line for logs: who holds the lease and until when."""
        record = self.current()
        if record is None:
            return f"lease {self.name!r}: free"
        left = record.expires_at - self.wall_clock()
        state = f"expires in {left:.1f} s" if left > 0 else "expired"
        return f"lease {self.name!r}: held by {record.holder} (term {record.term}, {state})"
