"""Prometheus gauges and counters of one monitor, in its own ``CollectorRegistry``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from monitor.compute.summaries import WindowSummary

FEATURE_STATS = ("psi", "js", "ks", "wasserstein", "chi2", "null_rate", "unseen_share")


class MonitorMetrics:
    """Latest drift figures per model/version/route/feature, plus activity counters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["model", "version", "route"]
        self.feature = Gauge(
            "mlgate_monitor_feature_drift",
            "Latest drift figure of a feature",
            [*labels, "feature", "statistic"],
            registry=self.registry,
        )
        self.feature_drifted = Gauge(
            "mlgate_monitor_feature_drifted",
            "1 when the feature is flagged as drifted",
            [*labels, "feature"],
            registry=self.registry,
        )
        self.share = Gauge(
            "mlgate_monitor_share_drifted",
            "Share of drifted features",
            labels,
            registry=self.registry,
        )
        self.dataset = Gauge(
            "mlgate_monitor_dataset_drift",
            "1 when the dataset drifts",
            labels,
            registry=self.registry,
        )
        self.performance = Gauge(
            "mlgate_monitor_performance",
            "Latest labelled metric",
            [*labels, "metric"],
            registry=self.registry,
        )
        self.windows = Counter(
            "mlgate_monitor_windows", "Windows computed", labels, registry=self.registry
        )
        self.segments = Counter(
            "mlgate_monitor_segments",
            "Segments read, by outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.problems = Counter(
            "mlgate_monitor_problems",
            "Bad data and failures recorded",
            ["kind"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "mlgate_monitor_webhook_deliveries",
            "Delivery attempts",
            ["outcome"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "mlgate_monitor_outbox_pending", "Alerts waiting", registry=self.registry
        )
        self.rows = Counter(
            "mlgate_monitor_rows", "Prediction rows counted", ["model"], registry=self.registry
        )

    def observe_window(self, s: WindowSummary) -> None:
        key = (s.model, str(s.version), s.route)
        for f in [*s.features, *s.prediction.get("columns", [])]:
            for stat in FEATURE_STATS:
                v = f.get(stat)
                if v is not None:
                    self.feature.labels(*key, f["name"], stat).set(float(v))
            self.feature_drifted.labels(*key, f["name"]).set(1.0 if f.get("drifted") else 0.0)
        self.share.labels(*key).set(s.share_drifted)
        self.dataset.labels(*key).set(1.0 if s.dataset_drift else 0.0)

    def observe_performance(self, key: tuple[str, int, str], perf: dict[str, Any]) -> None:
        for metric, v in perf.items():
            if isinstance(v, int | float) and v is not None:
                self.performance.labels(key[0], str(key[1]), key[2], metric).set(float(v))
