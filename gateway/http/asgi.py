"""An ASGI application (the Litestar app) served from RSGI, on the two public contracts only.

granian calls ``__rsgi__(scope, protocol)`` (RSGI: https://github.com/emmett-framework/granian
/blob/master/docs/spec/RSGI.md); an ASGI app expects ``app(scope, receive, send)`` (ASGI 3.0
HTTP and lifespan). ``AsgiBridge`` translates one into the other: the RSGI scope becomes an
ASGI ``http`` scope, ``receive`` yields the body chunks then waits for the client to leave,
``send`` answers in one ``response_bytes`` call, or streams when the app sends more than one
body message. The lifespan runs the app's start-up and shutdown handlers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if port.isdigit() else None


class _Exchange:
    """One request: ``receive`` and ``send`` of the ASGI app over one RSGI protocol."""

    __slots__ = ("chunks", "done", "headers", "protocol", "status", "stream")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.chunks = protocol.__aiter__()
        self.done = False  # the whole body was handed to the app
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.stream: Any = None  # the RSGI transport once the answer streams

    async def receive(self) -> Message:
        if not self.done:
            try:
                chunk = await self.chunks.__anext__()
            except StopAsyncIteration:
                self.done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self.protocol.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
            ]
            return
        if kind != "http.response.body":
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.stream is None and not more:
            self.protocol.response_bytes(self.status, self.headers, body)
            return
        if self.stream is None:
            self.stream = self.protocol.response_stream(self.status, self.headers)
        if body:
            await self.stream.send_bytes(body)


class AsgiBridge:
    """Serve an ASGI 3.0 app (``http`` and ``lifespan`` scopes) on RSGI requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}  # the lifespan state every request scope carries
        self._shutdown = asyncio.Event()
        self._lifespan: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[Message] | None = None

    async def __call__(self, scope: Any, protocol: Any) -> None:
        exchange = _Exchange(protocol)
        query = scope.query_string
        asgi_scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version,
            "method": scope.method,
            "scheme": scope.scheme,
            "path": scope.path,
            "raw_path": scope.path.encode("utf-8"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in scope.headers.items()
            ],
            "client": _address(scope.client),
            "server": _address(scope.server),
            "state": dict(self.state),
        }
        await self.app(asgi_scope, exchange.receive, exchange.send)
        if exchange.stream is None and exchange.status == 0:  # the app never answered
            protocol.response_bytes(500, [("content-type", "text/plain")], b"no response")

    # -- lifespan -------------------------------------------------------------------------------
    async def startup(self) -> None:
        """Run the app's lifespan start-up; raises if it fails."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[Message] = loop.create_future()
        stopped: asyncio.Future[Message] = loop.create_future()
        steps = iter([{"type": "lifespan.startup"}])

        async def receive() -> Message:
            step = next(steps, None)
            if step is not None:
                return step
            await self._shutdown.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: Message) -> None:
            kind = message["type"]
            if kind.startswith("lifespan.startup") and not started.done():
                started.set_result(message)
            elif kind.startswith("lifespan.shutdown") and not stopped.done():
                stopped.set_result(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}  # fmt: skip
        self._stopped = stopped
        self._lifespan = loop.create_task(self.app(scope, receive, send))
        self._lifespan.add_done_callback(
            lambda task: (
                None
                if started.done()
                else started.set_result(
                    {"type": "lifespan.startup.failed", "message": "the lifespan ended early"}
                )
            )
        )
        answer = await started
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"ASGI lifespan start-up failed: {answer.get('message', '')}")

    async def shutdown(self) -> None:
        """Run the app's lifespan shutdown (after its start-up ran)."""
        if self._lifespan is None or self._stopped is None:
            return
        self._shutdown.set()
        answer = await self._stopped
        if answer["type"] != "lifespan.shutdown.complete":
            log.error("ASGI lifespan shutdown failed: %s", answer.get("message", ""))
        await self._lifespan
