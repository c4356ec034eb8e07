"""One monitor pass as a process of its own, for the tests that SIGKILL it mid-pass.

``python -m tests.monitor.monitor_pass <root> <webhook url>``: the registry under
``<root>/registry``, the log store ``<root>/logs``, the state ``<root>/monitor.duckdb``; prints
the pass's outcome as one JSON line.

``python -m tests.monitor.monitor_pass --fork``: imports the monitor once, then for each line
``<root> <webhook url> <kill after s>`` on stdin forks a process that runs one pass (so a pass
starts in milliseconds, not after seconds of imports, and a kill lands in the pass itself),
SIGKILLs it after that many seconds if it still runs (``-`` for never), and prints one JSON
line: ``{"code": exit status (-9: killed), "seconds": its run time}``.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
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


def run(root: Path, url: str) -> dict[str, int]:
    registry = Registry("file://" + str(root / "registry"))
    monitor = Monitor(registry, str(root / "logs"), db=root / "monitor.duckdb", config=config(url))
    try:
        result = monitor.run_once()
    finally:
        monitor.close()
    return {"events": result.events, "delivered": result.delivered,
            "pending": result.pending_alerts}  # fmt: skip


# what a pass imports on first use, imported once before the passes are forked
PRELOAD = ("httpx", "numba", "pandas", "pyarrow.dataset", "pyarrow.parquet", "scipy.linalg",
           "scipy.stats", "registry.store_local")  # fmt: skip


def fork_passes() -> None:
    """Serve ``--fork`` requests until stdin closes."""
    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        root, url, kill_after = line.split()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the pass; its output goes to stderr, stdout is the parent's answers
            code = 0
            try:
                os.dup2(2, 1)
                run(Path(root), url)
            except BaseException:  # noqa: BLE001 - reported by the exit status
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        pidfd = os.pidfd_open(pid)
        timeout = None if kill_after == "-" else float(kill_after)
        if not select.select([pidfd], [], [], timeout)[0]:  # still running: kill it
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"code": code, "seconds": time.monotonic() - start}), flush=True)


def main() -> None:
    if sys.argv[1:] == ["--fork"]:
        fork_passes()
        return
    root, url = Path(sys.argv[1]), sys.argv[2]
    print(json.dumps(run(root, url)))


if __name__ == "__main__":
    main()
