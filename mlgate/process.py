"""Process-wide tuning of a gateway worker, applied by the composition root only.

These change the whole process (the GIL switch interval, numpy's BLAS thread pool, the
garbage collector), so the ``Gateway`` never does it itself: a worker process started by
``mlgate serve`` applies them (``front_from_env``); a gateway embedded in a test or another
program leaves its host process alone unless asked (``create_gateway_front(tune_process=True)``).
"""

from __future__ import annotations

import gc
import sys
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
