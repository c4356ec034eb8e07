"""A lean ASGI request/response path for the predict endpoints.

The predict handlers are Litestar ``@asgi`` routes: Litestar still routes them and its
exception middleware still turns errors into ``{"error": ...}`` responses, but the handler
reads the body and writes the response itself, skipping the per-request Request/Response
objects and signature parsing (about a quarter of the event loop's time per request).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from gateway.errors import BadRequest, PayloadTooLarge

JSON = b"application/json"
OCTETS = b"application/octet-stream"


class RawRequest:
    """Headers, query and body of one ASGI HTTP request."""

    __slots__ = ("_headers", "receive", "scope")

    def __init__(self, scope: Any, receive: Any) -> None:
        self.scope = scope
        self.receive = receive
        self._headers: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path_params(self) -> dict[str, Any]:
        return dict(self.scope.get("path_params", {}))

    def header(self, name: str) -> str | None:
        """A request header by lower-case name (the last one wins)."""
        if self._headers is None:
            self._headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope["headers"]
            }
        return self._headers.get(name)

    def query(self, name: str) -> str | None:
        raw = self.scope.get("query_string", b"")
        if not raw:
            return None
        values = parse_qs(raw.decode("latin-1")).get(name)
        return values[-1] if values else None

    async def body(self, limit: int) -> bytes:
        length = self.header("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(
                f"body: expected at most max_body_bytes={limit} bytes, got {length}"
            )
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("body: the client disconnected before sending it all")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"body: expected at most max_body_bytes={limit} bytes, got more"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        encoding = self.header("content-encoding")
        if encoding in ("gzip", "deflate"):
            body = _inflate(body, encoding, limit)
        return body


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    import zlib

    wbits = 31 if encoding == "gzip" else 15
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body: Content-Encoding {encoding}: cannot decompress: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"body: decompressed size exceeds max_body_bytes={limit}")
    if not inflater.eof:  # decompress() does not raise on a stream cut short
        raise BadRequest(f"body: Content-Encoding {encoding}: the compressed stream is truncated")
    return out


async def send_response(
    send: Any,
    body: bytes,
    *,
    status: int = 200,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    raw_headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *(headers or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
