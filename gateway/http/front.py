"""``GatewayFront``: the RSGI application granian serves, one per worker process.

A ``POST`` to a predict path (``gateway.http.routes``) is answered here: the operation
(``gateway.http.predict``) reads the body through the body rules (``gateway.http.body``), and
the answer, or the ``{"error": ...}`` of any exception (``responses.error_parts``), goes out in
RSGI's one call, ``protocol.response_bytes``. Every other request goes to the Litestar app
through ``AsgiBridge``. The front also owns the worker's lifecycle: ``startup`` starts the
gateway (models, log writer) and the app's lifespan; ``shutdown`` drains both.

granian calls ``__rsgi_init__(loop)`` before it serves and ``__rsgi_del__(loop)`` after: with
the loop not yet running (granian's worker processes) they run start-up and shutdown to the
end; with a running loop (granian's embedded server) they schedule them, and requests wait
for the start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.http.asgi import AsgiBridge
from gateway.http.request import JSON, PredictRequest
from gateway.http.responses import error_parts
from gateway.http.routes import match

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class GatewayFront:
    """RSGI app: predict requests answered directly, the rest by ``app`` (an ASGI app)."""

    def __init__(
        self,
        gateway: Gateway,
        app: Any,
        *,
        on_startup: tuple[Hook, ...] = (),
        on_shutdown: tuple[Hook, ...] = (),
    ) -> None:
        self.gateway = gateway
        self.app = app
        self.asgi = AsgiBridge(app)
        self.on_startup = on_startup  # after the gateway started (the composition root's)
        self.on_shutdown = on_shutdown  # before the gateway drains
        self.started = False
        self._startup: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Future[None] | None = None

    # -- RSGI ---------------------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if not self.started:
            await self.startup()
        if scope.proto != "http":  # websockets are off in mlgate's server settings
            protocol.close()
            return
        if scope.method == "POST":
            await self._predict_or_app(scope, protocol)
            return
        await self.asgi(scope, protocol)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_running():
            loop.create_task(self.startup())
        else:
            loop.run_until_complete(self.startup())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_running():
            loop.create_task(self.shutdown())
        else:
            loop.run_until_complete(self.shutdown())

    # -- lifecycle ----------------------------------------------------------------------------
    async def startup(self) -> None:
        """Start the gateway, then the app's lifespan and the ``on_startup`` hooks (once;
        every caller waits for the same start-up)."""
        if self._startup is None:
            self._startup = asyncio.ensure_future(self._start())
        await self._startup

    async def shutdown(self) -> None:
        """Drain: the hooks, the app's lifespan, then the gateway (queued requests are
        answered, the log flushed). Once."""
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._stop())
        await self._shutdown

    async def _start(self) -> None:
        await self.gateway.start()
        await self.asgi.startup()
        for hook in self.on_startup:
            await hook()
        self.started = True

    async def _stop(self) -> None:
        if self._startup is not None and not self._startup.done():
            await asyncio.wait([self._startup])
        for hook in self.on_shutdown:
            await hook()
        await self.asgi.shutdown()
        await self.gateway.aclose()

    # -- the predict path ---------------------------------------------------------------------
    async def _predict_or_app(self, scope: Any, protocol: Any) -> None:
        path = scope.path
        try:
            operation = match("POST", path)
        except Exception as exc:  # noqa: BLE001 - a malformed predict path: its 4xx
            self._error(protocol, exc, path)
            return
        if operation is None:
            await self.asgi(scope, protocol)
            return
        request = PredictRequest(scope.headers, scope.query_string)
        try:
            reply = await operation(self.gateway, request, protocol)
        except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
            self._error(protocol, exc, path)
            return
        protocol.response_bytes(200, reply.headers, reply.body)

    def _error(self, protocol: Any, exc: Exception, path: str) -> None:
        status, body, headers = error_parts(exc, self.gateway.metrics, "POST", path)
        protocol.response_bytes(status, [("content-type", JSON), *headers], body)
