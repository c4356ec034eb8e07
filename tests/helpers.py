"""Helpers shared by the test packages: waiting for a condition, a granian server (the
gateway) or a uvicorn server (the dashboard) on a free loopback port in a thread, and the small
fitted models the rollout tests register."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import uvloop
from sklearn.linear_model import LogisticRegression


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, every_s: float = 0.01) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(every_s)


@functools.lru_cache(maxsize=8)
def fitted_churn(seed: int) -> LogisticRegression:
    """A small logistic regression on 3 features; each seed gives a different model."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    return LogisticRegression().fit(X, (X[:, 0] + 0.1 * seed > 0).astype(int))


class GranianServer:
    """An app served by granian's embedded server on 127.0.0.1 (a free port), on its own
    uvloop event loop in a background thread: an RSGI app (the gateway's ``GatewayFront``)
    or, with ``interface="asgi"``, an ASGI app.

    ``with GranianServer(front) as server: server.url``. An RSGI app's ``__rsgi_init__`` /
    ``__rsgi_del__`` run as under ``mlgate serve``; an app with an async ``shutdown`` (the
    front) is awaited to the end before the thread stops. Leaving the block stops it.
    """

    def __init__(self, app: Any, *, interface: str = "rsgi", start_timeout_s: float = 90.0) -> None:
        from granian.constants import Interfaces
        from granian.server.embed import Server

        self.app = app
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.server = Server(
            app,
            address="127.0.0.1",
            port=port,
            interface=Interfaces(interface),
            websockets=False,
            log_enabled=False,  # granian would configure the process's logging
        )
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.start_timeout_s = start_timeout_s
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by __enter__/__exit__
            self.error = exc
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        await self.server.serve()
        shutdown = getattr(self.app, "shutdown", None)
        if shutdown is not None:
            await shutdown()

    def _accepting(self) -> bool:
        if self.error is not None:
            raise AssertionError(f"the server failed to start: {self.error!r}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def __enter__(self) -> GranianServer:
        self.thread.start()
        try:
            wait_for(self._accepting, self.start_timeout_s)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.server.stop)
        self.thread.join(60)


class UvicornServer:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) in a background thread, as
    ``mlgate ui`` serves the dashboard.

    ``with UvicornServer(app) as server: server.url``; extra keyword arguments go to
    ``uvicorn.Config``. Leaving the block stops it gracefully.
    """

    def __init__(self, app: Any, *, start_timeout_s: float = 90.0, **config: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        options = {"log_level": "warning", "lifespan": "on", **config}
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.start_timeout_s = start_timeout_s

    def __enter__(self) -> UvicornServer:
        self.thread.start()
        try:
            wait_for(lambda: self.server.started, self.start_timeout_s)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def free_port() -> int:
    """A loopback port free at the time of asking (for servers started as subprocesses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawned_children(pid: int) -> list[int]:
    """Process ids of ``pid``'s children started by multiprocessing's spawn (granian's
    workers), leaving out any that exits while they are listed (a killed worker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # gone since the list was read
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found
