"""Prometheus metrics of one gateway app, in its own ``CollectorRegistry`` (no global state).

Counters and histograms are updated on the request path through cached label children;
figures owned by other objects (queue depth, log rows) are read at scrape time by a collector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client.metrics_core import Metric

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GatewayMetrics:
    """The gateway's metrics. ``snapshot`` callables feed the scrape-time collector."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlgate_requests",
            "Prediction requests by model, version, route and HTTP status.",
            ["model", "version", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mlgate_request_latency_seconds",
            "Server time per prediction request, split by stage (queue, compute, total).",
            ["model", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "mlgate_batch_rows",
            "Rows per computed batch.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
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
        self._children: dict[tuple[str, ...], Any] = {}
        self._gauges: list[Callable[[], Iterator[Metric]]] = []
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
    ) -> None:
        key = (model, str(version), route, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(*key)
        child.inc()
        self._latency(model, "total").observe(total_s)
        if queue_s is not None:
            self._latency(model, "queue").observe(queue_s)
        if compute_s is not None:
            self._latency(model, "compute").observe(compute_s)

    def observe_batch(self, model: str, version: int, rows: int) -> None:
        key = ("batch", model, str(version))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.batch_rows.labels(model, str(version))
        child.observe(rows)

    def _latency(self, model: str, stage: str) -> Any:
        key = ("latency", model, stage)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(model, stage)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
