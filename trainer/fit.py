"""Fitting in a process of its own, with its threads capped and its time bounded.

Each candidate is fitted in a fresh ``spawn`` child: the trainer (and a gateway on the same
machine) keeps its CPUs apart from ``fit_threads``, a recipe that crashes the interpreter
or runs past ``fit_timeout_s`` costs only that candidate, and a trainer killed mid-fit takes
its child with it (the child exits when its parent is gone).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import numpy as np
    import polars as pl

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "POLARS_MAX_THREADS",
)


@dataclass(frozen=True)
class FitJob:
    """What the child needs: the recipe and the rows (pickled to it once)."""

    recipe: str
    task: str
    unfitted: Any
    frame: pl.DataFrame
    target: str
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    threads: int
    nice: int = 0


@dataclass(frozen=True)
class FitResult:
    """A fitted estimator, or the reason there is none; ``fit_s`` is the child's own time."""

    estimator: Any = None
    error: str | None = None
    fit_s: float = 0.0


def _exit_with_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def lower_priority(nice: int) -> None:
    """Raise this process's nice level to ``nice`` (never lowers it; 0: leave it)."""
    if nice <= 0 or not hasattr(os, "nice"):
        return
    current = os.nice(0)
    if current < nice:
        os.nice(nice - current)


def _child(job: FitJob, conn: Connection, parent: int) -> None:
    lower_priority(job.nice)
    for var in THREAD_VARS:
        os.environ[var] = str(job.threads)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from threadpoolctl import threadpool_limits

    from trainer import recipes

    started = time.perf_counter()
    try:
        with threadpool_limits(limits=job.threads):
            estimator = recipes.build(
                job.recipe,
                task=job.task,
                unfitted=job.unfitted,
                frame=job.frame,
                target=job.target,
                X=job.X,
                y=job.y,
                weights=job.weights,
                threads=job.threads,
            )
        result = FitResult(estimator=estimator, fit_s=time.perf_counter() - started)
    except BaseException as exc:  # noqa: BLE001 - any failure of user code becomes a reason
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        result = FitResult(
            error=f"{type(exc).__name__}: {exc}{where}", fit_s=time.perf_counter() - started
        )
    try:
        conn.send(result)
    except Exception as exc:  # noqa: BLE001 - e.g. an estimator that cannot be pickled
        conn.send(FitResult(error=f"the fitted estimator cannot be sent back: {exc}"))
    conn.close()


def fit_in_child(job: FitJob, *, timeout_s: float) -> FitResult:
    """Fit ``job`` in a spawned child; past ``timeout_s`` the child is killed."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child, args=(job, send, os.getpid()), name="mlgate-fit", daemon=True
    )
    started = time.monotonic()
    child.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            return FitResult(error=f"the fit took longer than fit_timeout_s = {timeout_s:g} s")
        try:
            result: FitResult = receive.recv()
        except (EOFError, OSError):
            child.join(5)
            return FitResult(
                error=f"the fitting process died (exit code {child.exitcode})",
                fit_s=time.monotonic() - started,
            )
        return result
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receive.close()
