"""One monitor pass as a process of its own, for the tests that SIGKILL it mid-pass.

``python -m tests.monitor.monitor_pass <root> <webhook url>``: the registry under
``<root>/registry``, the log store ``<root>/logs``, the state ``<root>/monitor.duckdb``; prints
the pass's outcome as one JSON line.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from monitor import Monitor, MonitorConfig, WebhookEndpoint
from registry import Registry

SECRET = "whsec_" + base64.b64encode(b"a fixed key of the test receiver").decode()


def config(url: str) -> MonitorConfig:
    # no cooldown: whether a repeat is held back must not depend on when an earlier alert
    # was delivered (which a kill moves)
    # windows of 500 rows: many windows, computed in several chunks (a longer compute stage)
    return MonitorConfig(
        webhooks=(WebhookEndpoint(url=url, secret=SECRET),),
        cooldown_s=0.0,
        window_rows=500,
        min_rows=500,
    )


def main() -> None:
    root, url = Path(sys.argv[1]), sys.argv[2]
    registry = Registry("file://" + str(root / "registry"))
    monitor = Monitor(registry, str(root / "logs"), db=root / "monitor.duckdb", config=config(url))
    try:
        result = monitor.run_once()
    finally:
        monitor.close()
    print(json.dumps({"events": result.events, "delivered": result.delivered,
                      "pending": result.pending_alerts}))  # fmt: skip


if __name__ == "__main__":
    main()
