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

import os
import sys

# Arrow's C++ default pool is chosen when pyarrow is first imported: jemalloc gives freed
# segment batches back on its own (see ``monitor.ingest.memory.prefer_jemalloc``). A value the user
# set is kept; Linux only, where pyarrow's wheels always have jemalloc.
if sys.platform.startswith("linux") and "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

from monitor.alerts.outbox import AlertSender, Delivery, HttpSender  # noqa: E402
from monitor.clock import Clock, ManualClock, SystemClock  # noqa: E402
from monitor.config import MonitorConfig, MonitorConfigError, WebhookEndpoint  # noqa: E402
from monitor.monitor import Monitor, PassResult  # noqa: E402

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
]

from monitor.report.build import ReportError, build_report  # noqa: E402
from monitor.service import MonitorService  # noqa: E402

__all__ += ["MonitorService", "ReportError", "build_report"]
