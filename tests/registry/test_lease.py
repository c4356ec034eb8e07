"""Leases on both backends (local directory, moto's S3 server): one holder at a time, renewal,
takeover after expiry or release, and races where exactly one contender may win."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from registry import Lease, Registry, RegistryError


class SteppedClock:
    """A clock the test moves by hand (used as both the wall and the monotonic clock)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


def lease(reg: Registry, holder: str, clock: SteppedClock, ttl_s: float = 30.0) -> Lease:
    return Lease(reg, "monitor", ttl_s=ttl_s, holder=holder, wall_clock=clock, monotonic=clock)


def test_one_holder_at_a_time_and_renewal_keeps_it(registry_url: str) -> None:
    reg = Registry(registry_url)
    clock = SteppedClock()
    a, b = lease(reg, "a", clock), lease(reg, "b", clock)
    assert a.acquire() and a.held and a.term == 1
    assert not b.acquire() and not b.held
    for _ in range(5):  # renewals well inside the ttl keep the lease with a across many ttls
        clock.step(20)
        assert a.acquire()
        assert not b.acquire()
    record = a.current()
    assert record is not None and record.holder == "a" and record.term == 1
    assert record.expires_at == clock.now + 30
    assert a.acquisitions == 1 and a.losses == 0
    assert "held by a (term 1" in b.describe()


def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(registry_url: str) -> None:
    reg = Registry(registry_url)
    clock = SteppedClock()
    a, b = lease(reg, "a", clock), lease(reg, "b", clock)
    assert a.acquire()
    clock.step(29.9)
    assert a.held and not b.acquire()  # not expired yet
    clock.step(0.2)  # a stopped renewing: its own deadline passed before anyone may take over
    assert not a.held
    assert b.acquire() and b.term == 2
    assert not a.acquire() and not a.held
    assert "held by b (term 2" in a.describe()


def test_a_holder_losing_the_lease_while_it_believed_it_held_it_is_counted(
    registry_url: str,
) -> None:
    reg = Registry(registry_url)
    # a's monotonic clock stalls (a paused process) while the wall clock moves on
    wall, stalled = SteppedClock(), SteppedClock()
    a = Lease(reg, "monitor", ttl_s=10, holder="a", wall_clock=wall, monotonic=stalled)
    b = lease(reg, "b", wall, ttl_s=10)
    assert a.acquire()
    wall.step(11)
    assert b.acquire()
    assert a.held  # by its own clock; the next acquire() finds out
    assert not a.acquire() and a.losses == 1 and not a.held


def test_release_hands_over_at_once(registry_url: str) -> None:
    reg = Registry(registry_url)
    clock = SteppedClock()
    a, b = lease(reg, "a", clock), lease(reg, "b", clock)
    assert a.acquire()
    assert not b.release()  # not b's to release
    assert a.release() and not a.held
    record = b.current()
    assert record is not None and record.expires_at == 0.0
    assert b.acquire() and b.term == 2
    assert "expired" not in b.describe()


@pytest.mark.parametrize("expired_first", [False, True], ids=["free", "expired"])
def test_racing_contenders_exactly_one_wins(registry_url: str, expired_first: bool) -> None:
    reg = Registry(registry_url)
    clock = SteppedClock()
    if expired_first:
        assert lease(reg, "old", clock).acquire()
        clock.step(31)
    contenders = [lease(Registry(registry_url), f"c{i}", clock) for i in range(8)]
    barrier = threading.Barrier(len(contenders))

    def contend(one: Lease) -> bool:
        barrier.wait()
        return one.acquire()

    with ThreadPoolExecutor(len(contenders)) as pool:
        won = list(pool.map(contend, contenders))
    assert sum(won) == 1, won
    winner = contenders[won.index(True)]
    record = winner.current()
    assert record is not None and record.holder == winner.holder
    assert record.term == (2 if expired_first else 1)


def test_bad_names_settings_and_records_are_clear_errors(registry_url: str) -> None:
    reg = Registry(registry_url)
    with pytest.raises(RegistryError, match="lease name must match"):
        Lease(reg, "Bad Name")
    with pytest.raises(RegistryError, match="ttl_s must be > 0, got 0"):
        Lease(reg, "monitor", ttl_s=0)
    reg.store.write("leases/monitor.json", b"not json")
    with pytest.raises(RegistryError, match=r"leases/monitor\.json: not a lease record"):
        Lease(reg, "monitor").acquire()
