"""The pure-Python load generators against a tiny HTTP server on a real loopback socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from benchmarks import asyncio_load


class SlowServer:
    """Answers every POST after ``delay_s``, one request at a time (a single-file queue)."""

    def __init__(self, delay_s: float, status: int = 200) -> None:
        self.delay_s, self.status = delay_s, status
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        lock = asyncio.Lock()
        self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()
        writers: set[asyncio.StreamWriter] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            writers.add(writer)
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                    async with lock:
                        await asyncio.sleep(self.delay_s)
                    body = b'{"ok":true}'
                    writer.write(
                        f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)

    def __enter__(self) -> SlowServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def fast() -> Iterator[SlowServer]:
    with SlowServer(0.002) as server:
        yield server


def _requests(port: int) -> list[bytes]:
    return [asyncio_load.http_request("127.0.0.1", port, "/x", b'{"a":1}')]


def test_open_loop_under_capacity_sees_service_time(fast: SlowServer) -> None:
    r = asyncio_load.open_loop("127.0.0.1", fast.port, _requests(fast.port), rate=100, duration_s=1)
    assert r.requests == 100 and r.errors == 0 and r.timeouts == 0
    assert 2.0 <= r.p50_ms < 50.0


def test_open_loop_charges_the_queue_to_late_requests() -> None:
    # 40 requests/s offered to a server that does 20/s: the k-th request waits ~k*25 ms.
    with SlowServer(0.05) as slow:
        r = asyncio_load.open_loop(
            "127.0.0.1", slow.port, _requests(slow.port), rate=40, duration_s=1, timeout_s=5
        )
    assert r.requests == 40 and r.timeouts == 0
    assert r.max_ms > 800  # a closed-loop generator would report ~50 ms here


def test_open_loop_counts_timeouts_and_errors() -> None:
    with SlowServer(0.3, status=503) as slow:
        r = asyncio_load.open_loop(
            "127.0.0.1", slow.port, _requests(slow.port), rate=20, duration_s=0.5, timeout_s=1
        )
    assert r.timeouts > 0
    assert r.errors == r.non_2xx == r.requests > 0


def test_closed_loop_keeps_n_requests_in_flight(fast: SlowServer) -> None:
    r = asyncio_load.closed_loop(
        "127.0.0.1", fast.port, _requests(fast.port), connections=4, duration_s=0.5
    )
    assert r.errors == 0 and r.requests > 20
    assert r.p50_ms >= 4 * 2.0 * 0.9  # four in flight through a single-file server
