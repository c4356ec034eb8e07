"""The loop-side request metrics render exactly as prometheus-client's own would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, GatewayMetrics

latencies = st.lists(
    st.one_of(st.sampled_from(LATENCY_BUCKETS), st.floats(0, 20, allow_nan=False)), max_size=50
)


def _samples(text: bytes, prefix: str) -> list[str]:
    """The sample lines of one family, less ``_created`` (ours carry no creation time)."""
    lines = text.decode().splitlines()
    return sorted(line for line in lines if line.startswith(prefix) and "_created" not in line)


@given(latencies, latencies)
def test_requests_and_latencies_match_prometheus_client(
    totals: list[float], queues: list[float]
) -> None:
    ours = GatewayMetrics()
    registry = CollectorRegistry()
    requests = Counter("mlgate_requests", "", ["model", "version", "route", "status"],
                       registry=registry)  # fmt: skip
    latency = Histogram("mlgate_request_latency_seconds", "", ["model", "stage"],
                        buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
    for i, total in enumerate(totals):
        status = 200 if i % 3 else 400
        queue = queues[i] if i < len(queues) else None
        ours.observe_request("m", 2, "canary", status, total_s=total, queue_s=queue)
        requests.labels("m", "2", "canary", str(status)).inc()
        latency.labels("m", "total").observe(total)
        if queue is not None:
            latency.labels("m", "queue").observe(queue)
    theirs = generate_latest(registry)
    mine = ours.render()
    for prefix in ("mlgate_requests_total{", "mlgate_request_latency_seconds_"):
        assert _samples(mine, prefix) == _samples(theirs, prefix)


@given(st.lists(st.integers(1, 5000), max_size=50))
def test_batch_rows_match_prometheus_client(batches: list[int]) -> None:
    ours = GatewayMetrics()
    registry = CollectorRegistry()
    theirs = Histogram("mlgate_batch_rows", "", ["model", "version"], buckets=BATCH_BUCKETS,
                       registry=registry)  # fmt: skip
    for rows in batches:
        ours.observe_batch("m", 3, rows)
        theirs.labels("m", "3").observe(rows)
    prefix = "mlgate_batch_rows_"
    assert _samples(ours.render(), prefix) == _samples(generate_latest(registry), prefix)
    assert ours.version_stats("m", 3).batches == len(batches)
