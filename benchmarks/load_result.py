"""What one load point measured, whichever generator produced it."""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class LoadResult:
    """One load point: completed requests, latency and failures over ``duration_s``.

    ``errors`` counts non-2xx answers and connection/read/write errors; ``timeouts`` the
    requests with no answer within the generator's timeout (they have no latency sample).
    """

    generator: str  # "wrk" | "asyncio-closed" | "asyncio-open"
    requests: int
    duration_s: float
    errors: int
    timeouts: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int = 0  # part of ``errors``: answers that came back with a non-2xx status
    rows_per_request: int = 1
    offered_rate: float | None = None  # fixed-rate mode: requests/s the generator offered
    generator_cpu_s: float = 0.0  # CPU the load generator itself used (same machine)

    @property
    def generator_cores(self) -> float:
        return self.generator_cpu_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok_rps(self) -> float:
        """Successful requests per second."""
        ok = max(self.requests - self.non_2xx, 0)
        return ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.ok_rps * self.rows_per_request

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(rps=self.rps, ok_rps=self.ok_rps, rows_per_s=self.rows_per_s)
        return out


def cpu_seconds(who: int) -> float:
    """User + system CPU of this process (``RUSAGE_SELF``) or its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def with_generator_cpu(result: LoadResult, cpu_s: float) -> LoadResult:
    return replace(result, generator_cpu_s=cpu_s)
