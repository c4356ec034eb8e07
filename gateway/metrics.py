"""Prometheus metrics of one gateway app, in its own ``CollectorRegistry`` (no global state).

The per-request and per-batch figures (request counter, latency and batch-size histograms)
are plain counts kept on the event loop and turned into metric families at scrape time:
prometheus-client's own ``inc`` and ``observe`` take a lock and walk the buckets in Python,
about a tenth of the loop's time per request (at low load a batch is a request). Rarer events
(loads, shadows) use prometheus-client's metrics directly;
figures owned by other objects (queue depth, log rows) are read at scrape time by a collector.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client.metrics_core import Metric

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class VersionStats:
    """Triton-style statistics of one served version, from the requests this worker answered
    (``/v2/models/{m}/stats``, gRPC ``ModelStatistics``). Durations in nanoseconds."""

    __slots__ = ("batches", "compute_ns", "fail_count", "fail_ns", "last_inference_ms",
                 "queue_ns", "rows", "success_count", "success_ns")  # fmt: skip

    def __init__(self) -> None:
        self.success_count = 0
        self.success_ns = 0
        self.fail_count = 0
        self.fail_ns = 0
        self.queue_ns = 0
        self.compute_ns = 0
        self.rows = 0  # Triton's inference_count: rows inferred
        self.batches = 0  # Triton's execution_count: batches computed
        self.last_inference_ms = 0


class GatewayMetrics:
    """The gateway's metrics. ``snapshot`` callables feed the scrape-time collector."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # request counts by their labels, and the same cells by the caller's raw values
        self._requests: dict[tuple[str, str, str, str], _RequestCell] = {}
        self._cells: dict[tuple[str, int | str, str, int], _RequestCell] = {}
        self._latency: dict[tuple[str, str], LoopHistogram] = {}
        self._versions: dict[tuple[str, str], VersionStats] = {}
        self._batch_rows: dict[tuple[str, str], tuple[VersionStats, LoopHistogram]] = {}
        self.model_loads = Counter(
            "mlgate_model_loads",
            "Model version loads by outcome (ok, failed).",
            ["model", "outcome"],
            registry=r,
        )
        self.model_load_seconds = Histogram(
            "mlgate_model_load_seconds",
            "Time to load, compile and warm a model version.",
            ["model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.shadow_dropped = Counter(
            "mlgate_shadow_dropped",
            "Shadow copies not sent (queue full, version not loaded, other inputs).",
            ["model", "reason"],
            registry=r,
        )
        self.internal_errors = Counter(
            "mlgate_internal_errors",
            "Unexpected errors answered with 500.",
            ["where"],
            registry=r,
        )
        self._gauges: list[Callable[[], Iterator[Metric]]] = [self._collect_requests]
        self.registry.register(_Snapshot(self._gauges))

    def add_collector(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """Register a scrape-time source of metric families."""
        self._gauges.append(collect)

    def observe_request(
        self,
        model: str,
        version: int | str,
        route: str,
        status: int,
        *,
        total_s: float,
        queue_s: float | None = None,
        compute_s: float | None = None,
        rows: int = 0,
    ) -> None:
        """Count one answered request and its latency by stage (call on the event loop)."""
        cell = self._cells.get((model, version, route, status))
        if cell is None:
            cell = self._cell(model, version, route, status)
        cell.count += 1
        stats = cell.stats
        if stats is not None:
            total_ns = int(total_s * 1e9)
            if status == 200:
                stats.success_count += 1
                stats.success_ns += total_ns
                stats.rows += rows
                stats.queue_ns += int((queue_s or 0.0) * 1e9)
                stats.compute_ns += int((compute_s or 0.0) * 1e9)
                stats.last_inference_ms = time.time_ns() // 1_000_000
            else:
                stats.fail_count += 1
                stats.fail_ns += total_ns
        cell.total.observe(total_s)
        if queue_s is not None:
            if cell.queue is None:  # a stage's histogram exists once it has a sample
                cell.queue = self._histogram(model, "queue")
            cell.queue.observe(queue_s)
        if compute_s is not None:
            if cell.compute is None:
                cell.compute = self._histogram(model, "compute")
            cell.compute.observe(compute_s)

    def _cell(self, model: str, version: int | str, route: str, status: int) -> _RequestCell:
        """The counters one kind of request updates, looked up once (then by ``_cells``)."""
        labels = (model, str(version), route, str(status))
        cell = self._requests.get(labels)
        if cell is None:
            cell = self._requests[labels] = _RequestCell(
                self.version_stats(model, version) if version != "" else None,
                self._histogram(model, "total"),
                self._latency.get((model, "queue")),
                self._latency.get((model, "compute")),
            )
        self._cells[(model, version, route, status)] = cell
        return cell

    def _histogram(self, model: str, stage: str) -> LoopHistogram:
        key = (model, stage)
        histogram = self._latency.get(key)
        if histogram is None:
            histogram = self._latency[key] = LoopHistogram(LATENCY_BUCKETS)
        return histogram

    def _collect_requests(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mlgate_requests",
            "Prediction requests by model, version, route and HTTP status.",
            labels=["model", "version", "route", "status"],
        )
        for key, cell in list(self._requests.items()):
            requests.add_metric(list(key), cell.count)
        yield requests
        latency = HistogramMetricFamily(
            "mlgate_request_latency_seconds",
            "Server time per prediction request, split by stage (queue, compute, total).",
            labels=["model", "stage"],
        )
        for (model, stage), histogram in list(self._latency.items()):
            buckets, total = histogram.snapshot()
            latency.add_metric([model, stage], buckets, total)
        yield latency
        batch_rows = HistogramMetricFamily(
            "mlgate_batch_rows", "Rows per computed batch.", labels=["model", "version"]
        )
        for (model, version), (_, histogram) in list(self._batch_rows.items()):
            buckets, total = histogram.snapshot()
            batch_rows.add_metric([model, version], buckets, total)
        yield batch_rows

    def version_stats(self, model: str, version: int | str) -> VersionStats:
        """The statistics of one version (zeros until it answers)."""
        key = (model, str(version))
        stats = self._versions.get(key)
        if stats is None:
            stats = self._versions[key] = VersionStats()
        return stats

    def observe_batch(self, model: str, version: int, rows: int) -> None:
        """Count one computed batch of ``rows`` rows (call on the event loop)."""
        key = (model, str(version))
        entry = self._batch_rows.get(key)
        if entry is None:
            entry = self._batch_rows[key] = (self.version_stats(model, version),
                                             LoopHistogram(BATCH_BUCKETS))  # fmt: skip
        entry[0].batches += 1
        entry[1].observe(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCell:
    """What one kind of request (model, version, route, status) counts into."""

    __slots__ = ("compute", "count", "queue", "stats", "total")

    def __init__(
        self,
        stats: VersionStats | None,
        total: LoopHistogram,
        queue: LoopHistogram | None,
        compute: LoopHistogram | None,
    ) -> None:
        self.count = 0
        self.stats = stats
        self.total = total
        self.queue = queue
        self.compute = compute


class LoopHistogram:
    """A histogram updated from one thread (the event loop) without a lock."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``(le, count)`` buckets ending with ``+Inf``, and the sum."""
        counts, total = list(self.counts), self.sum
        buckets: list[tuple[str, int]] = []
        cumulative = 0
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        return buckets, total


class _Snapshot:
    """A prometheus collector that yields whatever the registered callables report."""

    def __init__(self, sources: list[Callable[[], Iterator[Metric]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()

    def describe(self) -> list[Metric]:
        return []


def gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def counter(name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=labels)
