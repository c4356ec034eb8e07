"""uvicorn's HTTP/1.1 protocol with the predict endpoints answered inside it.

Under load the event loop is the gateway's bottleneck, and for a one-row request the ASGI
plumbing cost more than the gateway's own work: a ``RequestResponseCycle`` with its event,
``receive``/``send`` message dicts, a regex check per response header and two socket writes
per response. ``GatewayHttpProtocol`` keeps everything uvicorn does for a connection (parsing,
keep-alive, pipelining order, flow control, graceful shutdown, every other route) and only
for ``POST`` to a predict path (``fastpath.match``) collects the body itself, runs the same
operation the ASGI routes run (``gateway.http.predict``) and writes the answer in one write.
Answers are byte for byte those of the ASGI path apart from uvicorn's ``date``/``server``
headers, which both carry.

Use it as ``uvicorn.run(..., http=GatewayHttpProtocol)``; an app that is not (or does not
wrap) a ``FastPath`` is served exactly as by uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr

from gateway.errors import GatewayError, PayloadTooLarge, ShuttingDown
from gateway.http.fastpath import FastPath, match
from gateway.http.raw import JSON, BufferedRequest, too_large_message
from gateway.http.responses import error_parts

if TYPE_CHECKING:
    from gateway.codecs import Payload
    from gateway.http.predict import Operation, Staged

log = logging.getLogger(__name__)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _NoEvent:
    """Stands in for the cycle's ``message_event`` that uvicorn sets on a lost connection."""

    __slots__ = ()

    def set(self) -> None:
        return None


_NO_EVENT = _NoEvent()


class PredictCycle:
    """One predict request on a connection: its head, its body as it arrives, and the
    state uvicorn's connection code reads from a cycle (``response_complete``,
    ``disconnected``, ``keep_alive``, ``message_event``)."""

    __slots__ = (
        "body",
        "complete",
        "disconnected",
        "expect_100_continue",
        "headers",
        "keep_alive",
        "length",
        "operation",
        "path",
        "query",
        "response_complete",
        "running",
        "scope",
        "size",
        "start",
        "too_large",
    )

    message_event = _NO_EVENT

    def __init__(
        self,
        operation: Operation,
        path: str,
        headers: list[tuple[bytes, bytes]],
        query: bytes,
        *,
        keep_alive: bool,
        expect_100_continue: bool,
        length: str | None,
        scope: dict[str, Any],
    ) -> None:
        self.operation = operation
        self.start = time.perf_counter_ns()  # the request's latency counts from its head
        self.scope = scope  # uvicorn's, for the access log line
        self.path = path
        self.headers = headers
        self.query = query
        self.keep_alive = keep_alive
        self.expect_100_continue = expect_100_continue
        self.length = length
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.complete = False  # the whole body arrived
        self.running = False  # its turn on the connection came (pipelined requests wait)
        self.response_complete = False
        self.disconnected = False


def find_fastpath(app: Any) -> FastPath | None:
    """The ``FastPath`` inside uvicorn's middleware wrappers (each keeps its inner ``app``)."""
    for _ in range(8):
        if isinstance(app, FastPath):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that answers predict requests without the ASGI round trip."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fastpath = find_fastpath(self.app)

    # -- parser callbacks ---------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        fastpath = self.fastpath
        parser = self.parser
        if (
            fastpath is None
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
            or self.limit_concurrency is not None
        ):
            super().on_headers_complete()
            return
        url = httptools.parse_url(self.url)
        try:
            path = self.root_path + url.path.decode("ascii")
        except UnicodeDecodeError:
            path = ""
        operation = match(path) if path else None
        if operation is None:  # not a predict path: uvicorn and the ASGI app take it
            super().on_headers_complete()
            return
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value.decode("latin-1")
        cycle = PredictCycle(
            operation,
            path,
            self.headers,
            url.query or b"",
            keep_alive=parser.get_http_version() != "1.0" and parser.should_keep_alive(),
            expect_100_continue=self.expect_100_continue,
            length=length,
            scope=self.scope,  # type: ignore[arg-type]
        )
        limit = fastpath.gateway.settings.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            cycle.too_large = True
        previous = self.cycle
        self.cycle = cycle  # type: ignore[assignment]
        if previous is None or previous.response_complete:
            self._begin(cycle)
        else:  # pipelined behind an unanswered request: its turn comes in on_response_complete
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, None))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if not isinstance(cycle, PredictCycle):
            super().on_body(body)
            return
        if cycle.response_complete or cycle.too_large:
            return  # answered already (413): the rest of the body is read and dropped
        cycle.size += len(body)
        if cycle.size > self._limit():
            cycle.too_large = True
            cycle.body = []
            if cycle.running:
                self._refuse_too_large(cycle)
            return
        cycle.body.append(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if not isinstance(cycle, PredictCycle):
            super().on_message_complete()
            return
        cycle.complete = True
        if cycle.running and not cycle.response_complete and not cycle.too_large:
            self._run(cycle)

    def on_response_complete(self) -> None:
        pipeline = self.pipeline
        if (
            pipeline
            and isinstance(pipeline[-1][0], PredictCycle)
            and not self.transport.is_closing()
        ):
            # a pipelined predict request's turn: what uvicorn does here, bar the ASGI task
            self.server_state.total_requests += 1
            self._unset_keepalive_if_required()
            self.flow.resume_reading()
            cycle = pipeline.pop()[0]
            assert isinstance(cycle, PredictCycle)
            self._begin(cycle)
            return
        super().on_response_complete()

    # -- the predict request ------------------------------------------------------------------
    def _limit(self) -> int:
        assert self.fastpath is not None
        return self.fastpath.gateway.settings.max_body_bytes

    def _begin(self, cycle: PredictCycle) -> None:
        """The request's turn on the connection: answer it now if its body is all here."""
        cycle.running = True
        if cycle.too_large:
            self._refuse_too_large(cycle)
            return
        if cycle.expect_100_continue and not cycle.complete and not self.transport.is_closing():
            self.transport.write(CONTINUE)
        if cycle.complete:
            self._run(cycle)

    def _refuse_too_large(self, cycle: PredictCycle) -> None:
        if not cycle.complete and cycle.expect_100_continue:
            # the client waits for "100 Continue" before it sends the body, or sends it after
            # a while: close the connection after the 413 rather than guess which bytes are
            # body (without Expect the body is on its way; it is read and dropped)
            cycle.keep_alive = False
        length = cycle.length if cycle.length and cycle.length.isdigit() else None
        exc = PayloadTooLarge(too_large_message(self._limit(), length))
        self._answer_error(cycle, exc)

    def _run(self, cycle: PredictCycle) -> None:
        """Admit, decode and queue the request now; answer from the batch's done-callback
        (no task per request: the loop's time per request is what limits throughput)."""
        fastpath = self.fastpath
        assert fastpath is not None
        gw = fastpath.gateway
        body = cycle.body[0] if len(cycle.body) == 1 else b"".join(cycle.body)
        cycle.body = []
        request = BufferedRequest(cycle.headers, cycle.query, body)
        operation = cycle.operation
        try:
            model = operation.admit(gw, request)
            if len(body) >= gw.settings.decode_off_loop_bytes or request.compressed:
                task = self.loop.create_task(self._decode_off_loop(cycle, request, model))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                return
            try:
                payload = operation.decode(request, body)  # not compressed: read as is
            except GatewayError as exc:
                gw.rejected(model, exc)
                raise
        except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
            self._answer_error(cycle, exc)
            return
        self._queue(cycle, request, model, payload)

    async def _decode_off_loop(self, cycle: PredictCycle, request: BufferedRequest,
                               model: str) -> None:  # fmt: skip
        """A large or compressed body: inflate and decode it on a thread, then queue it."""
        assert self.fastpath is not None
        gw = self.fastpath.gateway
        operation = cycle.operation
        limit = gw.settings.max_body_bytes
        try:
            try:
                payload = await asyncio.to_thread(
                    lambda: operation.decode(request, request.read(limit))
                )
            except GatewayError as exc:
                gw.rejected(model, exc)
                raise
        except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
            self._answer_error(cycle, exc)
            return
        self._queue(cycle, request, model, payload)

    def _queue(self, cycle: PredictCycle, request: BufferedRequest, model: str,
               payload: Payload) -> None:  # fmt: skip
        """Queue the decoded request; the batch future's done-callback answers it."""
        assert self.fastpath is not None
        try:
            staged = cycle.operation.queue(self.fastpath.gateway, request, model, payload,
                                           cycle.start)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
            self._answer_error(cycle, exc)
            return
        staged.pending.future.add_done_callback(functools.partial(self._done, cycle, staged))

    def _done(self, cycle: PredictCycle, staged: Staged, future: asyncio.Future[Any]) -> None:
        if future.cancelled():  # nothing cancels batch futures; answer rather than hang
            self._answer_error(cycle, ShuttingDown("the request was cancelled"))
            return
        try:
            reply = staged.reply()
        except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
            self._answer_error(cycle, exc)
            return
        self._write(cycle, 200, reply.content_type, reply.body, reply.headers)

    def _answer_error(self, cycle: PredictCycle, exc: Exception) -> None:
        assert self.fastpath is not None
        status, body, headers = error_parts(exc, self.fastpath.metrics, "POST", cycle.path)
        self._write(cycle, status, JSON, body, headers)

    def _write(
        self,
        cycle: PredictCycle,
        status: int,
        content_type: bytes,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Status line, headers and body in one write, then uvicorn's end-of-response."""
        if cycle.response_complete:
            return
        cycle.response_complete = True
        if cycle.disconnected:
            return
        if self.access_log:
            scope: Any = cycle.scope
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                "POST",
                cycle.path + ("?" + cycle.query.decode("latin-1") if cycle.query else ""),
                scope["http_version"],
                status,
            )
        parts = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"content-type: ", content_type, b"\r\ncontent-length: ",
                  str(len(body)).encode(), b"\r\n")  # fmt: skip
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()
