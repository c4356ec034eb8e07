"""The batcher on its own: batching under load, row limits, culprit isolation, bounds."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from gateway.batcher import Batcher
from gateway.errors import InferenceFailed, Overloaded


class GateRuntime:
    """A real runtime (sum of the features) whose calls can be held open by the test, so that
    the test decides when the runtime is busy instead of sleeping."""

    backend = "test"
    n_features = 2
    task = "regression"
    classes = None
    allows_nan = False

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(X.shape[0])
        if (X < 0).any():
            raise ValueError("negative input")
        return {"predict": X.sum(axis=1).astype(np.float64)}


def rows(n: int, value: float = 1.0) -> np.ndarray:
    return np.full((n, 2), value, dtype=np.float32)


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def make(runtime: GateRuntime, pool: ThreadPoolExecutor, **options: Any) -> Batcher:
    batcher = Batcher(runtime, executor=pool, name="m:1", **options)
    batcher.start()
    return batcher


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def test_requests_arriving_while_busy_form_the_next_batch(pool: ThreadPoolExecutor) -> None:
    async def main() -> None:
        runtime = GateRuntime()
        batcher = make(runtime, pool, max_batch_rows=8)
        runtime.gate.clear()
        first = batcher.submit(rows(1))
        await asyncio.to_thread(runtime.entered.wait, 5)  # the runtime is now busy
        later = [batcher.submit(rows(2, i)) for i in range(3)]
        runtime.gate.set()
        results = await asyncio.gather(first, *later)
        assert runtime.batches == [1, 6]  # no delay for the first, the rest batched
        assert [r.batch_rows for r in results] == [1, 6, 6, 6]
        np.testing.assert_array_equal(results[2].outputs["predict"], [2.0, 2.0])
        await batcher.aclose()

    asyncio.run(main())


def test_max_batch_rows_counts_rows_and_a_big_request_runs_alone(
    pool: ThreadPoolExecutor,
) -> None:
    async def main() -> None:
        runtime = GateRuntime()
        batcher = make(runtime, pool, max_batch_rows=4)
        runtime.gate.clear()
        first = batcher.submit(rows(1))
        await asyncio.to_thread(runtime.entered.wait, 5)
        futures = [batcher.submit(rows(n)) for n in (3, 2, 10, 1)]
        runtime.gate.set()
        await asyncio.gather(first, *futures)
        assert runtime.batches == [1, 3, 2, 10, 1]
        await batcher.aclose()

    asyncio.run(main())


def test_a_failing_batch_is_retried_one_by_one_so_only_the_culprit_fails(
    pool: ThreadPoolExecutor,
) -> None:
    async def main() -> None:
        runtime = GateRuntime()
        batcher = make(runtime, pool, max_batch_rows=64)
        runtime.gate.clear()
        first = batcher.submit(rows(1))
        await asyncio.to_thread(runtime.entered.wait, 5)
        good1, bad, good2 = (batcher.submit(rows(1, v)) for v in (1.0, -1.0, 2.0))
        runtime.gate.set()
        results = await asyncio.gather(first, good1, bad, good2, return_exceptions=True)
        assert isinstance(results[2], InferenceFailed)
        assert "negative input" in str(results[2])
        assert results[3].outputs["predict"].tolist() == [4.0]  # type: ignore[union-attr]
        await batcher.aclose()

    asyncio.run(main())


def test_a_full_queue_refuses_at_once(pool: ThreadPoolExecutor) -> None:
    async def main() -> None:
        runtime = GateRuntime()
        batcher = make(runtime, pool, max_batch_rows=4, max_queue_rows=5, retry_after_s=2)
        runtime.gate.clear()
        first = batcher.submit(rows(1))
        await asyncio.to_thread(runtime.entered.wait, 5)
        queued = [batcher.submit(rows(2)), batcher.submit(rows(2))]
        with pytest.raises(Overloaded, match="max_queue_rows=5") as info:
            batcher.submit(rows(2))
        assert info.value.retry_after_s == 2
        runtime.gate.set()
        await asyncio.gather(first, *queued)
        await batcher.aclose()

    asyncio.run(main())


def test_max_delay_holds_a_batch_open_to_fill_it(pool: ThreadPoolExecutor) -> None:
    async def main() -> None:
        runtime = GateRuntime()
        batcher = make(runtime, pool, max_batch_rows=4, max_delay_us=2_000_000)
        futures = [batcher.submit(rows(1)) for _ in range(4)]  # fills the batch: no wait
        await asyncio.gather(*futures)
        assert runtime.batches == [4]
        await batcher.aclose()

    asyncio.run(main())


def test_a_timed_out_request_is_skipped_and_close_drains(pool: ThreadPoolExecutor) -> None:
    async def main() -> None:
        runtime = GateRuntime()
        batcher = make(runtime, pool, max_batch_rows=4)
        runtime.gate.clear()
        first = batcher.submit(rows(1))
        await asyncio.to_thread(runtime.entered.wait, 5)
        gone = batcher.submit(rows(3))
        gone.cancel()  # what a request timeout does
        kept = batcher.submit(rows(2))
        runtime.gate.set()
        await asyncio.gather(first, kept)
        await wait_until(lambda: not batcher.busy)
        assert runtime.batches == [1, 2]
        await batcher.aclose()
        assert batcher.queued_rows == 0

    asyncio.run(main())


class ThreadRecordingRuntime:
    """A real runtime (sum of the features) that burns ``cpu_s`` of CPU a call and records
    the thread each batch ran on."""

    backend = "test"
    n_features = 2
    task = "regression"
    classes = None
    allows_nan = False

    def __init__(self, cpu_s: float = 0.0, wait_s: float = 0.0) -> None:
        self.cpu_s = cpu_s
        self.wait_s = wait_s  # time spent waiting (a GPU, its own threads): no CPU here
        self.threads: list[int] = []

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        if self.wait_s:
            time.sleep(self.wait_s)
        start = time.thread_time()
        while time.thread_time() - start < self.cpu_s:
            pass
        if (X < 0).any():
            raise ValueError("negative input")
        return {"predict": X.sum(axis=1).astype(np.float64)}


def test_a_cheap_batch_runs_on_the_loop_once_timed(pool: ThreadPoolExecutor) -> None:
    async def main() -> None:
        runtime = ThreadRecordingRuntime()
        batcher = make(runtime, pool, inline_compute_us=10_000)
        loop_thread = threading.get_ident()
        results = [await batcher.submit(rows(1, v)) for v in (1.0, 2.0, 3.0, 4.0)]
        assert [r.outputs["predict"].tolist() for r in results] == [[2.0], [4.0], [6.0], [8.0]]
        # the first batch is timed on a thread, the next ones are known to be cheap
        assert runtime.threads[0] != loop_thread
        assert runtime.threads[1:] == [loop_thread] * 3
        assert 0 < batcher.row_ns < 10_000_000
        # a failing batch on the loop fails its own request only, and the loop carries on
        good, bad = batcher.submit(rows(1)), batcher.submit(rows(1, -1.0))
        done = await asyncio.gather(good, bad, return_exceptions=True)
        assert isinstance(done[1], InferenceFailed) and "negative input" in str(done[1])
        assert done[0].outputs["predict"].tolist() == [2.0]  # type: ignore[union-attr]
        await batcher.aclose()

    asyncio.run(main())


def test_a_costly_batch_stays_on_the_threads(pool: ThreadPoolExecutor) -> None:
    async def main() -> None:
        runtime = ThreadRecordingRuntime(cpu_s=0.002)  # 2 ms of CPU a call
        batcher = make(runtime, pool, inline_compute_us=100)
        loop_thread = threading.get_ident()
        for _ in range(4):
            await batcher.submit(rows(1))
        assert loop_thread not in runtime.threads
        assert batcher.row_ns >= 1_000_000
        # a runtime that waits costs the loop its wall time, though it burns no CPU
        waiting = ThreadRecordingRuntime(wait_s=0.005)
        waits = make(waiting, pool, inline_compute_us=1000)
        for _ in range(4):
            await waits.submit(rows(1))
        assert loop_thread not in waiting.threads
        await waits.aclose()
        # off (0): never on the loop, however cheap
        cheap = ThreadRecordingRuntime()
        off = make(cheap, pool)
        for _ in range(4):
            await off.submit(rows(1))
        assert loop_thread not in cheap.threads
        await batcher.aclose()
        await off.aclose()

    asyncio.run(main())
