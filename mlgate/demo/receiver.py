"""A local webhook receiver for the demo: prints each alert and checks its signature."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from monitor.alerts.webhooks import verify

if TYPE_CHECKING:
    from collections.abc import Callable


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that verifies Standard Webhooks signatures with
    ``secret`` and hands each ``(verified, headers, payload)`` to ``on_alert``."""

    def __init__(
        self, secret: str, on_alert: Callable[[bool, dict[str, str], dict[str, Any]], None]
    ) -> None:
        self.secret = secret
        self.on_alert = on_alert
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = verify(receiver.secret, headers, body, now=time.time())
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unreadable": body[:200].decode(errors="replace")}
                receiver.received.append(payload)
                receiver.on_alert(ok, headers, payload)
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # the demo prints alerts itself

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
