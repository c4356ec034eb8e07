"""Load generators in pure Python (asyncio streams, raw HTTP/1.1 keep-alive).

- :func:`closed_loop`: ``connections`` clients each send the next request when the previous
  answer arrives (what ``wrk`` does); used only when ``wrk`` is not installed.
- :func:`open_loop`: requests start at a fixed rate whether or not earlier ones have finished,
  and each latency is measured from the request's *intended* start time, so a server that
  stalls is charged for the whole queue it built up (no coordinated omission, as ``wrk2``).
  A request waits for a free connection when ``max_connections`` are busy; that wait counts.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.load_result import LoadResult, cpu_seconds, with_generator_cpu

if TYPE_CHECKING:
    from collections.abc import Coroutine


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """A complete HTTP/1.1 keep-alive POST of a JSON ``body``."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


@dataclass
class _Tally:
    latencies_s: list[float] = field(default_factory=list)
    non_2xx: int = 0
    socket_errors: int = 0
    timeouts: int = 0

    def result(
        self, generator: str, duration_s: float, *, rows: int, rate: float | None
    ) -> LoadResult:
        lat = np.asarray(self.latencies_s) * 1e3 if self.latencies_s else np.zeros(1)
        return LoadResult(
            generator=generator,
            requests=len(self.latencies_s),
            duration_s=duration_s,
            errors=self.non_2xx + self.socket_errors,
            timeouts=self.timeouts,
            p50_ms=float(np.percentile(lat, 50)),
            p99_ms=float(np.percentile(lat, 99)),
            mean_ms=float(lat.mean()),
            max_ms=float(lat.max()),
            non_2xx=self.non_2xx,
            rows_per_request=rows,
            offered_rate=rate,
        )


class _Pool:
    """Keep-alive connections, opened on demand up to ``limit``."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.opened = 0

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.limit:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except BaseException:  # refused, or cancelled by the request's timeout
                self.opened -= 1
                raise
        return await self.idle.get()

    def release(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.put_nowait(conn)

    def discard(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        """Close a connection whose state is unknown; ``None`` (never acquired) is a no-op."""
        if conn is not None:
            conn[1].close()
            self.opened -= 1

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def _one(
    pool: _Pool, request: bytes, intended: float, timeout_s: float, tally: _Tally
) -> None:
    conn = None
    try:
        async with asyncio.timeout(timeout_s - (time.monotonic() - intended)):
            conn = await pool.acquire()
            conn[1].write(request)
            status = await _read_response(conn[0])
    except TimeoutError:
        tally.timeouts += 1
        pool.discard(conn)
        return
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        tally.socket_errors += 1
        pool.discard(conn)
        return
    tally.latencies_s.append(time.monotonic() - intended)
    if not 200 <= status < 300:
        tally.non_2xx += 1
    pool.release(conn)


async def _open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    rate: float,
    duration_s: float,
    timeout_s: float,
    max_connections: int,
) -> tuple[_Tally, float]:
    pool, tally = _Pool(host, port, max_connections), _Tally()
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    n_total = int(rate * duration_s)
    for i in range(n_total):
        intended = start + i / rate
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        request = requests[i % len(requests)]
        tasks.append(asyncio.create_task(_one(pool, request, intended, timeout_s, tally)))
    await asyncio.gather(*tasks)
    elapsed = max(time.monotonic() - start, duration_s)
    pool.close()
    return tally, elapsed


async def _closed_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    duration_s: float,
    timeout_s: float,
) -> tuple[_Tally, float]:
    pool, tally = _Pool(host, port, connections), _Tally()
    start = time.monotonic()
    end = start + duration_s

    async def client(k: int) -> None:
        i = k * 7919
        while time.monotonic() < end:
            await _one(pool, requests[i % len(requests)], time.monotonic(), timeout_s, tally)
            i += 1

    await asyncio.gather(*(client(k) for k in range(connections)))
    elapsed = time.monotonic() - start
    pool.close()
    return tally, elapsed


def _run(coro: Coroutine[Any, Any, tuple[_Tally, float]]) -> tuple[_Tally, float, float]:
    """Run a generator; also return the CPU seconds this process spent meanwhile."""
    cpu0 = cpu_seconds(resource.RUSAGE_SELF)
    try:
        import uvloop
    except ImportError:
        tally, elapsed = asyncio.run(coro)
    else:
        tally, elapsed = uvloop.run(coro)
    return tally, elapsed, cpu_seconds(resource.RUSAGE_SELF) - cpu0


def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    rate: float,
    duration_s: float,
    timeout_s: float = 10.0,
    max_connections: int = 256,
    rows_per_request: int = 1,
) -> LoadResult:
    """Offer ``rate`` requests/s for ``duration_s``; latency from each intended start."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"open_loop: rate and duration_s must be > 0, got {rate}, {duration_s}")
    coro = _open_loop(
        host,
        port,
        requests,
        rate=rate,
        duration_s=duration_s,
        timeout_s=timeout_s,
        max_connections=max_connections,
    )
    tally, elapsed, cpu_s = _run(coro)
    result = tally.result("asyncio-open", elapsed, rows=rows_per_request, rate=rate)
    return with_generator_cpu(result, cpu_s)


def closed_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    duration_s: float,
    timeout_s: float = 10.0,
    rows_per_request: int = 1,
) -> LoadResult:
    """``connections`` clients, each sending its next request once the last one answered."""
    coro = _closed_loop(
        host,
        port,
        requests,
        connections=connections,
        duration_s=duration_s,
        timeout_s=timeout_s,
    )
    tally, elapsed, cpu_s = _run(coro)
    result = tally.result("asyncio-closed", elapsed, rows=rows_per_request, rate=None)
    return with_generator_cpu(result, cpu_s)
