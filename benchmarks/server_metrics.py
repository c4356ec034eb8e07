"""What mlgate's own ``/metrics`` says about a load point: rows per batch, queue and compute time.

Read before and after a point; the differences of the histogram sums and counts give the means
over that point only. Servers without these metrics yield an empty snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

BATCH = "mlgate_batch_rows"
LATENCY = "mlgate_request_latency_seconds"


def scrape(url: str) -> dict[str, float]:
    """Sums of the batch-size and per-stage latency histograms, keyed ``name[:stage]_sum|count``.

    Returns ``{}`` when the server has no such metrics or cannot be reached.
    """
    try:
        text = httpx.get(url, timeout=5.0).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return {}
    for family in families:
        if family.name not in (BATCH, LATENCY):
            continue
        for sample in family.samples:
            suffix = sample.name.rsplit("_", 1)[-1]
            if suffix not in ("sum", "count"):
                continue
            stage = sample.labels.get("stage")
            key = f"{family.name}:{stage}_{suffix}" if stage else f"{family.name}_{suffix}"
            out[key] = out.get(key, 0.0) + sample.value
    return out


@dataclass(frozen=True)
class ServerView:
    """Means over one load point, from the server's own histograms (NaN when unknown)."""

    rows_per_batch: float
    queue_ms: float
    compute_ms: float
    total_ms: float

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> ServerView:
        def mean(name: str, scale: float = 1.0) -> float:
            n = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
            s = after.get(f"{name}_sum", 0.0) - before.get(f"{name}_sum", 0.0)
            return scale * s / n if n > 0 else float("nan")

        return cls(
            rows_per_batch=mean(BATCH),
            queue_ms=mean(f"{LATENCY}:queue", 1e3),
            compute_ms=mean(f"{LATENCY}:compute", 1e3),
            total_ms=mean(f"{LATENCY}:total", 1e3),
        )
