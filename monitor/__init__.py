"""The drift monitor: log reader, reference profiles, drift and performance statistics,
River detectors and signed alert webhooks (DESIGN.md "Monitor").

Public surface::

    Monitor(registry, logs_url, db=path, config=MonitorConfig(), clock=..., sender=...)
    Monitor.run_once() -> PassResult ; Monitor.collector_registry ; Monitor.close()
    MonitorService(monitor, interval_s=...) ; await service.start() / await service.aclose()
    build_report(store, model, version=None, window="latest") -> dict
"""

from monitor.clock import Clock, ManualClock, SystemClock
from monitor.config import MonitorConfig, MonitorConfigError, WebhookEndpoint
from monitor.monitor import Monitor, PassResult, from_locations
from monitor.outbox import AlertSender, Delivery, HttpSender

__all__ = [
    "AlertSender",
    "Clock",
    "Delivery",
    "HttpSender",
    "ManualClock",
    "Monitor",
    "MonitorConfig",
    "MonitorConfigError",
    "PassResult",
    "SystemClock",
    "WebhookEndpoint",
    "from_locations",
]

from monitor.report import ReportError, build_report  # noqa: E402
from monitor.service import MonitorService  # noqa: E402

__all__ += ["MonitorService", "ReportError", "build_report"]
