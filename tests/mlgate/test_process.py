"""``mlgate.process.stop_with_parent``: a worker whose supervisor dies does not serve on, even
when its orderly stop hangs (as a granian worker's did, stuck in its signal handler)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]

# a worker whose orderly stop never ends: SIGTERM ignored
WORKER = """
import signal, sys, time
from mlgate.process import stop_with_parent
signal.signal(signal.SIGTERM, signal.SIG_IGN)
stop_with_parent(grace_s=1.0)
print("armed", flush=True)
time.sleep(600)
"""
SUPERVISOR = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-P", "-c", sys.argv[1]])
print(worker.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Exited (reaped, or a zombie nobody reaps in this sandbox)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def test_a_worker_leaves_after_its_supervisor_is_killed_even_if_its_stop_hangs() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-P", "-c", SUPERVISOR, WORKER],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert supervisor.stdout is not None
        worker = int(supervisor.stdout.readline())
        assert supervisor.stdout.readline().strip() == "armed"
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(10)
        killed = time.monotonic()
        time.sleep(0.3)
        assert not _gone(worker)  # it waits out its grace period first
        wait_for(lambda: _gone(worker), timeout_s=30, every_s=0.1)
        assert 1.0 <= time.monotonic() - killed < 30
    finally:
        supervisor.kill()
        supervisor.wait(10)
        if supervisor.stdout is not None:
            supervisor.stdout.close()
        if "worker" in locals() and not _gone(worker):
            os.kill(worker, signal.SIGKILL)
