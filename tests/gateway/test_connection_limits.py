"""Connection limits of ``mlgate serve`` (granian), probed with real sockets: a client that
never finishes its request head is closed after ``http_header_timeout_s``, a kept-alive
connection that stays idle too, an over-size head gets 431, thousands of such idle connections
neither stop other clients nor lose a log row, and ``max_connections`` caps what one worker
holds open."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from gateway.settings import GatewaySettings, SettingsError
from registry import Registry
from tests.gateway.conftest import fit_iris
from tests.gateway.mlgate_process import mlgate_serve

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip
IDLE = 20_000  # idle connections held at once ...
CLIENTS = 4  # ... from this many client processes (each may open only ulimit -n files)
TIMEOUT_S = 15.0  # long enough for all IDLE to be connected and held at once


def _register(root: Path) -> None:
    Registry("file://" + str(root / "registry")).register("iris", fit_iris())


def _partial(host: str, port: int) -> socket.socket:
    """A connection that sends a request line and never the rest of the head."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
    return sock


def _closed_after(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes ``sock`` (its answer, if any, read and dropped)."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    while sock.recv(65536):
        pass
    return time.monotonic() - start


def _latencies(
    url: str, stop: threading.Event, ids: list[str], seconds: list[tuple[float, float]]
) -> None:
    """Predict on one kept-alive connection until ``stop``: ``(start, seconds)`` of each."""
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            start = time.monotonic()
            r = client.post("/v2/models/iris/infer", json=BODY)
            seconds.append((start, time.monotonic() - start))
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-request-id"])


def test_connection_settings_are_checked() -> None:
    defaults = GatewaySettings()
    assert defaults.http_header_timeout_s > 0 and defaults.http_max_header_bytes >= 8192
    assert defaults.connections_per_worker >= 64  # from the open-file limit
    assert GatewaySettings(max_connections=10).connections_per_worker == 10
    with pytest.raises(SettingsError, match="http_max_header_bytes"):
        GatewaySettings(http_max_header_bytes=4096)
    with pytest.raises(SettingsError, match="http_header_timeout_s"):
        GatewaySettings(http_header_timeout_s=0)
    with pytest.raises(SettingsError, match="max_connections"):
        GatewaySettings(max_connections=-1)


def _hold_idle(host: str, port: int, index: int, count: int, kind: str) -> subprocess.Popen[str]:
    """A client process holding ``count`` idle connections (``tests/gateway/idle_clients.py``)
    from its own loopback address."""
    return subprocess.Popen(
        [sys.executable, "-P", str(Path(__file__).with_name("idle_clients.py")), host, str(port),
         f"127.0.0.{10 + index}", str(count), kind, str(3 * TIMEOUT_S + 60)],
        stdout=subprocess.PIPE, text=True, preexec_fn=_raise_open_files,
    )  # fmt: skip


def _raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-file limit in /proc/{pid}/limits")


@pytest.mark.slow
def test_20000_idle_connections_neither_slow_clients_nor_lose_rows(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < IDLE // CLIENTS + 1024:
        pytest.skip(f"open-file limit {hard}: a client process cannot hold {IDLE // CLIENTS}")
    _register(tmp_path)
    config = (
        f'[gateway]\nbackend = "sklearn"\nhttp_header_timeout_s = {TIMEOUT_S}\n'
        "http_max_header_bytes = 16384\nlog_flush_interval_s = 60.0\nlog_flush_rows = 1000000\n"
    )
    ids: list[str] = []
    # started with a login shell's soft limit: the server raises it to the hard one itself
    with mlgate_serve(tmp_path, config, open_files_soft=1024) as served:
        host, port = served.http_address.split(":")
        (worker,) = served.workers()
        assert _soft_open_files(worker) == hard, "the soft open-file limit was not raised"
        cap = hard - 256  # max_connections' default, per worker

        # alone: the latency other clients are to keep
        stop, baseline = threading.Event(), []
        workers = [
            threading.Thread(target=_latencies, args=(served.http_url, stop, ids, baseline))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        time.sleep(5)
        stop.set()
        for w in workers:
            w.join(30)

        # an over-size head is refused with 431 and the connection closed
        with socket.create_connection((host, int(port)), timeout=10) as big:
            big.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
            assert big.recv(65536).startswith(b"HTTP/1.1 431"), "no 431 for a 40 kB header"
            assert _closed_after(big, 10) < 5
        # HTTP/2 is off by default: a preface is answered by a close, at once
        with socket.create_connection((host, int(port)), timeout=10) as h2:
            h2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert _closed_after(h2, 10) < 5

        # a kept-alive connection that answers one request and then stays idle
        kept = socket.create_connection((host, int(port)), timeout=10)
        kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        kept_closed: list[float] = []
        kept_watch = threading.Thread(
            target=lambda: kept_closed.append(_closed_after(kept, 3 * TIMEOUT_S + 60))
        )
        kept_watch.start()

        # IDLE connections, from CLIENTS processes, half of them sending a request line and
        # stopping, half sending nothing; clients already connected keep predicting beside them
        stop, during = threading.Event(), []
        workers = [
            threading.Thread(target=_latencies, args=(served.http_url, stop, ids, during))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        peak = [0]

        def watch_files() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _open_files(worker))
                time.sleep(0.5)  # listing 20,000 entries is not free

        watcher = threading.Thread(target=watch_files)
        watcher.start()
        holders = [
            _hold_idle(host, int(port), i, IDLE // CLIENTS, ("line", "silent")[i % 2])
            for i in range(CLIENTS)
        ]
        connected = [json.loads(h.stdout.readline()) for h in holders]  # type: ignore[union-attr]
        # a new connection now waits in the listen backlog behind the connections past the cap
        # until the header timeout frees places
        start = time.monotonic()
        r = httpx.get(f"{served.http_url}/v2/health/live", timeout=3 * TIMEOUT_S + 30)
        new_connection_s = time.monotonic() - start
        assert r.status_code == 200
        results = [json.loads(h.communicate(timeout=3 * TIMEOUT_S + 90)[0]) for h in holders]
        stop.set()
        for w in [*workers, watcher, kept_watch]:
            w.join(30)
        answered = len(ids)
    # other clients' latency alone, while all IDLE connections are held (from the last one
    # connected to the first one closed), and over the whole attack (the clients' processes
    # connecting and being closed take the same two cores the server has)
    held_from = max(c["at"] for c in connected)
    held_to = min(r["first_closed_at"] for r in results)
    held = [s for t, s in during if held_from <= t and t + s <= held_to]
    p99_alone = float(np.quantile([s for _, s in baseline], 0.99))
    p99_held = float(np.quantile(held, 0.99))
    p99_attack = float(np.quantile([s for _, s in during], 0.99))
    print(f"{IDLE} idle connections from {CLIENTS} processes, cap {cap}: peak {peak[0]} files "
          f"open; connected in {max(c['connect_s'] for c in connected):.1f} s, held "
          f"{min(r['min_s'] for r in results):.1f}-{max(r['max_s'] for r in results):.1f} s; "
          f"a new connection waited {new_connection_s:.1f} s; others' p99 "
          f"{p99_alone * 1e3:.1f} ms alone ({len(baseline)} requests), {p99_held * 1e3:.1f} ms "
          f"while all are held ({len(held)}), {p99_attack * 1e3:.1f} ms over the whole attack "
          f"({len(during)}, of {len(ids)} answered and logged)")  # fmt: skip
    assert sum(c["connected"] for c in connected) == IDLE
    # every idle connection was closed by the server, none before the timeout; those past the
    # cap waited in the backlog first (at most one timeout)
    assert sum(r["closed"] for r in results) == IDLE, results
    assert min(r["min_s"] for r in results) >= TIMEOUT_S - 0.5, results
    assert max(r["max_s"] for r in results) <= 2 * TIMEOUT_S + 20, results
    kept.close()
    assert TIMEOUT_S - 0.5 <= kept_closed[0] <= TIMEOUT_S + 15, kept_closed
    # the worker held thousands at once (connecting takes longer than the timeout on a busy
    # machine, so not always the cap), never its open-file limit, where accept fails and the
    # log's files cannot be opened
    assert 5_000 <= peak[0] <= hard - 64, (peak[0], cap)
    assert new_connection_s <= 2 * TIMEOUT_S + 20, new_connection_s
    # other clients were answered all along (every answer asserted 200 above), about as fast:
    # the 2x held on a quiet machine (10.1 -> 13.8 ms) and at load 14 (45.9 -> 83.8
    # ms); under make test the other xdist worker's tests share the two cores and moved the
    # tail by 2.6x in one run (18.6 -> 48.0 ms), so the bound here is 3x
    assert len(held) >= 100, len(held)
    assert p99_held <= 3 * p99_alone, (p99_alone, p99_held)
    # and not one of their rows is missing from the log (flushed at shutdown)
    files = list((tmp_path / "logs" / "predictions").glob("model=iris/date=*/*.parquet"))
    logged = set(pl.concat([pl.read_parquet(f) for f in files])["request_id"].to_list())
    assert answered == len(ids) and set(ids) <= logged, len(set(ids) - logged)


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    head = len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
    return head + payload


def _h2_get(sock: socket.socket, path: bytes) -> bytes:
    """Send an HTTP/2 (h2c, prior knowledge) GET on stream 1; the response's first header
    block (its first byte is ``0x88`` for :status 200, HPACK's static table)."""
    block = (b"\x82\x86" + b"\x44" + bytes([len(path)]) + path  # GET, http, :path literal
             + b"\x41\x01x")  # :authority x  # fmt: skip
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0)
                 + _h2_frame(1, 0x5, 1, block))  # fmt: skip
    buffer = b""
    while True:
        data = sock.recv(65536)
        assert data, "closed before an answer"
        buffer += data
        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
            size, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
            payload, buffer = buffer[9 : 9 + size], buffer[9 + size :]
            if kind == 4 and not flags & 1:
                sock.sendall(_h2_frame(4, 1, 0))  # settings acknowledged
            if kind == 1:
                return payload


@pytest.mark.slow
def test_max_connections_and_http2_keep_alive(tmp_path: Path) -> None:
    _register(tmp_path)
    config = "[gateway]\nmax_connections = 16\nhttp_header_timeout_s = 2.0\nhttp2 = true\n"
    with mlgate_serve(tmp_path, config) as served:
        host, port = served.http_address.split(":")
        idle = [_partial(host, int(port)) for _ in range(16)]
        time.sleep(0.3)  # all 16 accepted: the cap is reached
        start = time.monotonic()
        r = httpx.post(f"{served.http_url}/v2/models/iris/infer", json=BODY, timeout=30)
        waited = time.monotonic() - start
        assert r.status_code == 200, r.text
        # not accepted before the idle ones were closed by the header timeout
        assert waited >= 1.2, waited
        for sock in idle:
            assert _closed_after(sock, 10) < 10
            sock.close()

        # http2 = true: HTTP/2 is answered, and a connection whose client stops answering the
        # keep-alive pings is closed (a ping after 2 s of silence, unanswered for 2 s more)
        with socket.create_connection((host, int(port)), timeout=10) as h2:
            start = time.monotonic()
            assert _h2_get(h2, b"/v2/health/live")[:1] == b"\x88", "no :status 200"
            _closed_after(h2, 30)  # its pings read and left unanswered
            assert 3.5 <= time.monotonic() - start <= 15, time.monotonic() - start
