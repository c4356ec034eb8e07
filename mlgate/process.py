"""Process-wide tuning of a gateway worker, applied by the composition root only.

These change the whole process (the GIL switch interval, numpy's BLAS thread pool, the
garbage collector, what happens when the supervisor dies), so the ``Gateway`` never does it
itself: a worker process started by
``mlgate serve`` applies them (``front_from_env``); a gateway embedded in a test or another
program leaves its host process alone unless asked (``create_gateway_front(tune_process=True)``).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings


def tune_process(settings: GatewaySettings) -> None:
    """Before the models load: the GIL switch interval and the BLAS threads."""
    if settings.gil_switch_interval_s > 0:
        # how long the event loop may hold the GIL before an inference thread gets it
        sys.setswitchinterval(settings.gil_switch_interval_s)
    if settings.blas_threads > 0:
        # Batches already run on several inference threads; a BLAS pool per call on top
        # of that spin-waits for a busy core (the MLP took up to 7 ms at 512 rows).
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.blas_threads, user_api="blas")


def freeze_heap(settings: GatewaySettings) -> None:
    """After start-up: move the objects alive now out of the collector's reach
    (``gc_freeze``), so that full collections stay short under load."""
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


# How long a worker whose supervisor died may take to stop on its own before it leaves.
PARENT_GONE_GRACE_S = 30.0


def stop_with_parent(grace_s: float = PARENT_GONE_GRACE_S) -> None:
    """Get SIGTERM when the process that started this worker dies, even by SIGKILL (Linux),
    and leave ``grace_s`` later if that orderly stop has not ended the process.

    A granian worker is a child of the ``mlgate serve`` supervisor; without this, a
    supervisor killed outright leaves its workers serving (and holding the port and their log
    journals) with no one to stop them. With it they drain and exit, and the next
    ``mlgate serve`` starts clean. The orderly stop can itself hang: a worker was seen stuck
    in granian's signal handler after its supervisor's SIGKILL, serving on for minutes
    (``make test``, test_serve_crash). So a daemon thread watches the parent too, and when it
    is gone and the stop has not finished after ``grace_s``, ends the process with
    ``os._exit``: every row it answered is in its journal, which the next server replays.
    """
    parent = os.getppid()
    threading.Thread(
        target=_leave_after_parent, args=(parent, grace_s), name="mlgate-parent", daemon=True
    ).start()
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _leave_after_parent(parent: int, grace_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    time.sleep(grace_s)
    os._exit(1)  # the orderly stop did not finish: leave, the journal has the rows


def log_to_stderr(level: str) -> None:
    """Our own loggers (``gateway``, ``registry``, ``mlgate``: model loads, route changes,
    failures) print to this worker's stderr at ``level``, beside the server's own lines."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    for name in ("gateway", "registry", "mlgate"):
        logger = logging.getLogger(name)
        if not any(getattr(h, "_mlgate", False) for h in logger.handlers):
            handler._mlgate = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False
