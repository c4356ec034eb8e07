"""The drift monitor: log reader, reference profiles, drift and performance statistics,
River detectors and signed alert webhooks (DESIGN.md "Monitor"). Its stages are its
subpackages, in pipeline order: ``stats``, ``detectors``, ``store``, ``ingest``, ``compute``,
``alerts``, ``report`` (see ``monitor/README.md``).

Public surface::

    Monitor(registry, logs_url, db=path, config=MonitorConfig(), clock=..., sender=...)
    Monitor.run_once() -> PassResult ; Monitor.collector_registry ; Monitor.close()
    MonitorService(monitor, interval_s=...) ; await service.start() / await service.aclose()
    build_report(store, model, version=None, window="latest") -> dict
"""

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

# Arrow's C++ default pool is chosen when pyarrow is first imported: jemalloc gives freed
# segment batches back on its own (see ``monitor.ingest.memory.prefer_jemalloc``). A value the user
# set is kept; Linux only, where pyarrow's wheels always have jemalloc.
if sys.platform.startswith("linux") and "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

# The names below are imported on first use (PEP 562): a process that only needs one stage
# (the dashboard's report queries, mounted in every gateway worker) does not pay for all of
# them (numba, DuckDB and the detectors: ~0.5 s of each worker's start).
_EXPORTS = {
    "AlertSender": "monitor.alerts.outbox",
    "Delivery": "monitor.alerts.outbox",
    "HttpSender": "monitor.alerts.outbox",
    "Clock": "monitor.clock",
    "ManualClock": "monitor.clock",
    "SystemClock": "monitor.clock",
    "MonitorConfig": "monitor.config",
    "MonitorConfigError": "monitor.config",
    "WebhookEndpoint": "monitor.config",
    "Monitor": "monitor.monitor",
    "PassResult": "monitor.monitor",
    "ReportError": "monitor.report.build",
    "build_report": "monitor.report.build",
    "MonitorService": "monitor.service",
}
__all__ = [
    "AlertSender",
    "Clock",
    "Delivery",
    "HttpSender",
    "ManualClock",
    "Monitor",
    "MonitorConfig",
    "MonitorConfigError",
    "MonitorService",
    "PassResult",
    "ReportError",
    "SystemClock",
    "WebhookEndpoint",
    "build_report",
]

if TYPE_CHECKING:
    from monitor.alerts.outbox import AlertSender, Delivery, HttpSender
    from monitor.clock import Clock, ManualClock, SystemClock
    from monitor.config import MonitorConfig, MonitorConfigError, WebhookEndpoint
    from monitor.monitor import Monitor, PassResult
    from monitor.report.build import ReportError, build_report
    from monitor.service import MonitorService


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'monitor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
