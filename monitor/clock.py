"""Injected time: the monitor reads wall time through a ``Clock`` so tests can step it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (tests, replays).

    >>> c = ManualClock(100.0); c.advance(5); c.time()
    105.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
