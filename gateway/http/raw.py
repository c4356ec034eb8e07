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


class BaseRequest:
    """Headers, query and body of one predict request, whatever server delivered it."""

    __slots__ = ("_headers",)

    def __init__(self) -> None:
        self._headers: dict[str, str] | None = None

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    def query_string(self) -> bytes:
        raise NotImplementedError

    async def body(self, limit: int) -> bytes:
        raise NotImplementedError

    def header(self, name: str) -> str | None:
        """A request header by lower-case name (the last one wins)."""
        if self._headers is None:
            self._headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.raw_headers()
            }
        return self._headers.get(name)

    def query(self, name: str) -> str | None:
        raw = self.query_string()
        if not raw:
            return None
        values = parse_qs(raw.decode("latin-1")).get(name)
        return values[-1] if values else None

    @property
    def compressed(self) -> bool:
        return self.header("content-encoding") in ("gzip", "deflate")

    def _decoded(self, body: bytes, limit: int) -> bytes:
        encoding = self.header("content-encoding")
        if encoding in ("gzip", "deflate"):
            return _inflate(body, encoding, limit)
        return body


class RawRequest(BaseRequest):
    """A predict request on ASGI: the body is read from ``receive`` within ``limit``."""

    __slots__ = ("receive", "scope")

    def __init__(self, scope: Any, receive: Any) -> None:
        super().__init__()
        self.scope = scope
        self.receive = receive

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path_params(self) -> dict[str, Any]:
        return dict(self.scope.get("path_params", {}))

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = self.scope["headers"]
        return headers

    def query_string(self) -> bytes:
        raw: bytes = self.scope.get("query_string", b"")
        return raw

    async def body(self, limit: int) -> bytes:
        length = self.header("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(too_large_message(limit, length))
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("body: the client disconnected before sending it all")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(too_large_message(limit, None))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._decoded(body, limit)


class BufferedRequest(BaseRequest):
    """A predict request whose body the HTTP protocol already read (within the limit)."""

    __slots__ = ("_body", "_query", "_raw_headers")

    def __init__(self, headers: list[tuple[bytes, bytes]], query: bytes, body: bytes) -> None:
        super().__init__()
        self._raw_headers = headers
        self._query = query
        self._body = body

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._raw_headers

    def query_string(self) -> bytes:
        return self._query

    async def body(self, limit: int) -> bytes:
        return self.read(limit)

    def read(self, limit: int) -> bytes:
        """The body, inflated if it came compressed (the protocol checked its size)."""
        return self._decoded(self._body, limit)


def too_large_message(limit: int, length: str | None) -> str:
    return f"body: expected at most max_body_bytes={limit} bytes, got {length or 'more'}"


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
