"""Dynamic batching for one loaded version.

No added delay at low load: a batch starts as soon as the runtime is free, and the requests
that arrive while it computes form the next batch, up to ``max_batch_rows`` rows (a request
larger than that runs alone). ``max_delay_us`` optionally holds a batch open to fill it.
Inference runs on worker threads, except a batch the runtime is expected to compute within
``inline_compute_us`` (from the time its recent batches took per row): that one runs on the
event loop, since handing it to a thread and back costs the loop and the GIL more than the
compute itself (a 1-row forest is ~10 us; the hand-off ~100-150 us of CPU, the wake-ups of
two threads). If a batch fails, its requests are
retried one by one, so only the culprit gets the error. The queue is bounded in rows: past
``max_queue_rows`` ``submit`` raises ``Overloaded`` at once. ``on_answer`` sees each batch's
answers before any of them is released (the gateway journals them there, one write a batch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gateway.errors import InferenceFailed, Overloaded, ShuttingDown

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

    from gateway.runtimes.base import Runtime

log = logging.getLogger(__name__)


class BatchResult:
    """One request's slice of a batch's outputs, with where its time went."""

    __slots__ = ("batch_rows", "compute_ns", "outputs", "queue_ns")

    def __init__(
        self, outputs: dict[str, np.ndarray], *, batch_rows: int, queue_ns: int, compute_ns: int
    ) -> None:
        self.outputs = outputs
        self.batch_rows = batch_rows
        self.queue_ns = queue_ns
        self.compute_ns = compute_ns


class _Pending:
    __slots__ = ("X", "enqueued_ns", "future", "rows", "tag")

    def __init__(
        self, X: np.ndarray, future: asyncio.Future[BatchResult], now_ns: int, tag: object
    ) -> None:
        self.X = X
        self.rows = X.shape[0]
        self.future = future
        self.enqueued_ns = now_ns
        self.tag = tag


# (tag given to submit, the request's rows, its result) of each answered request of a batch
Answer = tuple[object, np.ndarray, BatchResult]


class Answers(NamedTuple):
    """A batch's answers for ``on_answer``; ``X`` and ``outputs`` are the whole batch's when
    every request of it is in ``answers`` (so a log needs no concatenation), else ``None``."""

    answers: list[Answer]
    X: np.ndarray | None
    outputs: dict[str, np.ndarray] | None


class Batcher:
    """Queue + batch loop in front of one runtime. Create and use it inside the running loop.

    Parameters
    ----------
    runtime
        The compiled model; ``predict`` runs on ``executor``'s threads.
    on_batch
        Called on the loop after each batch with its row count (for the batch-size histogram).
    on_answer
        Called on the loop with the answers of a batch (requests submitted with a ``tag``)
        before their futures are resolved. It must not raise; if it does, the error is logged
        and the answers are released anyway.
    inline_compute_us
        A batch expected to compute within this many microseconds runs on the event loop
        (0: always on ``executor``). The expectation is the runtime's wall time per row over
        recent batches (hand-off excluded) times the batch's rows; until a batch has been
        timed, batches go to the executor.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        executor: Executor,
        max_batch_rows: int = 256,
        max_delay_us: int = 0,
        max_queue_rows: int = 8192,
        parallel_batches: int = 1,
        retry_after_s: int = 1,
        inline_compute_us: int = 0,
        on_batch: Callable[[int], None] | None = None,
        on_answer: Callable[[Answers], None] | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        name: str = "",
    ) -> None:
        self.runtime = runtime
        self.executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_delay_us = max_delay_us
        self.max_queue_rows = max_queue_rows
        self.parallel_batches = parallel_batches
        self.retry_after_s = retry_after_s
        self.inline_compute_ns = inline_compute_us * 1000
        # the runtime's time per row (ns), a moving average over recent batches; 0: not timed
        self.row_ns = 0.0
        self.on_batch = on_batch
        self.on_answer = on_answer
        self.clock_ns = clock_ns
        self.name = name
        self._reset()

    def _reset(self) -> None:
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._running_rows = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- public -------------------------------------------------------------------------------
    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch (not counting the ones computing now)."""
        return self._queued_rows

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._running_rows > 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name=f"batcher {self.name} #{i}")
            for i in range(self.parallel_batches)
        ]

    def submit(self, X: np.ndarray, tag: object = None) -> asyncio.Future[BatchResult]:
        """Queue ``X`` (validated ``float32[n, d]``); the future resolves to its outputs.
        A ``tag`` is handed back to ``on_answer`` with the answer."""
        if self._closing:
            raise ShuttingDown(f"version {self.name} is draining and takes no new requests")
        rows = X.shape[0]
        if self._queued_rows and self._queued_rows + rows > self.max_queue_rows:
            raise Overloaded(
                f"queue of {self.name} is full: {self._queued_rows} rows waiting, limit "
                f"max_queue_rows={self.max_queue_rows}; retry later",
                retry_after_s=self.retry_after_s,
            )
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(X, future, self.clock_ns(), tag))
        self._queued_rows += rows
        if not self._wake.is_set():
            self._wake.set()
        return future

    async def aclose(self, *, timeout_s: float = 30.0) -> None:
        """Finish what is queued, then stop. Requests still queued at the timeout fail."""
        self._closing = True
        self._wake.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ShuttingDown(f"version {self.name} was released"))
        self._queued_rows = 0

    # -- loop ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            if self.max_delay_us and not self._closing:
                await self._fill()
            batch = self._take()
            if not batch:
                continue
            try:
                await self._execute(batch)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any batch
                log.exception("batcher %s: batch of %d requests failed", self.name, len(batch))
                for item in batch:
                    _fail(item, exc, self.name)

    async def _fill(self) -> None:
        """Hold the batch open until it is full or its oldest request waited ``max_delay_us``."""
        deadline = self._queue[0].enqueued_ns + self.max_delay_us * 1000
        while self._queued_rows < self.max_batch_rows and not self._closing:
            left_ns = deadline - self.clock_ns()
            if left_ns <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=left_ns / 1e9)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        queue = self._queue
        while queue:
            item = queue[0]
            if batch and rows + item.rows > self.max_batch_rows:
                break
            queue.popleft()
            self._queued_rows -= item.rows
            if item.future.done():  # timed out or cancelled while waiting
                continue
            batch.append(item)
            rows += item.rows
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        X = batch[0].X if len(batch) == 1 else np.concatenate([p.X for p in batch])
        rows = X.shape[0]
        self._running_rows += rows
        start = self.clock_ns()
        inline = 0 < self.row_ns * rows <= self.inline_compute_ns
        try:
            if inline:
                outputs = self._predict(X)
            else:
                outputs = await loop.run_in_executor(self.executor, self._predict, X)
        except Exception as exc:  # noqa: BLE001 - the runtime may raise anything
            outputs = None
            error = exc
        finally:
            self._running_rows -= rows
        end = self.clock_ns()
        if self.on_batch is not None:
            self.on_batch(rows)
        if outputs is not None:
            self._dispatch(batch, X, outputs, start, end)
        elif len(batch) == 1:
            _fail(batch[0], error, self.name)
        else:
            log.warning(
                "batch of %d requests on %s failed (%r): retrying one by one",
                len(batch),
                self.name,
                error,
            )
            for item in batch:
                await self._execute([item])

    def _predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        # wall time, not this thread's CPU time: a runtime that waits (a GPU, its own threads,
        # I/O) costs the loop its wall time when computed inline, though it uses no CPU here
        start = time.perf_counter_ns()
        outputs = self.runtime.predict(X)
        n = X.shape[0]
        per_row = (time.perf_counter_ns() - start) / max(n, 1)
        # the estimate follows a faster batch at once and a slower one by 5% a batch, so that
        # one slow batch does not send the next ones to a thread, and a runtime that really
        # got slower does after a few dozen (a float store is atomic: batches computed at
        # once, parallel_batches, may race here)
        row_ns = self.row_ns
        self.row_ns = per_row if row_ns == 0 or per_row < row_ns else min(per_row, row_ns * 1.05)
        for key, value in outputs.items():
            if value.shape[0] != n:
                raise RuntimeError(f"runtime output {key!r} has {value.shape[0]} rows for {n}")
        return outputs

    def _dispatch(
        self,
        batch: list[_Pending],
        X: np.ndarray,
        outputs: dict[str, np.ndarray],
        start: int,
        end: int,
    ) -> None:
        rows = sum(p.rows for p in batch)
        offset = 0
        results: list[tuple[_Pending, BatchResult]] = []
        for item in batch:
            stop = offset + item.rows
            if not item.future.done():
                sliced = (
                    outputs if len(batch) == 1 else {k: v[offset:stop] for k, v in outputs.items()}
                )
                result = BatchResult(
                    sliced, batch_rows=rows, queue_ns=start - item.enqueued_ns,
                    compute_ns=end - start,
                )  # fmt: skip
                results.append((item, result))
            offset = stop
        if self.on_answer is not None:
            answers = [(item.tag, item.X, r) for item, r in results if item.tag is not None]
            if answers:
                whole = len(answers) == len(batch)
                try:
                    self.on_answer(
                        Answers(answers, X if whole else None, outputs if whole else None)
                    )
                except Exception:  # noqa: BLE001 - an answer is never held back by its log
                    log.exception("batcher %s: on_answer failed", self.name)
        for item, result in results:
            item.future.set_result(result)


def _fail(item: _Pending, error: BaseException, name: str) -> None:
    if not item.future.done():
        message = f"model {name} failed on this request: {type(error).__name__}: {error}"
        item.future.set_exception(InferenceFailed(message))
