"""The body rules of every predict request, in one place.

1. Size: a ``Content-Length`` above ``max_body_bytes`` is refused (413) before a byte of the
   body is read; a body without one (chunked) is refused as soon as it grows past the limit.
   A body with an accepted ``Content-Length`` is read in one call (the server frames it by
   that length: no more bytes arrive); a chunked one chunk by chunk.
2. Compression: ``Content-Encoding: gzip`` or ``deflate`` is inflated, and the inflated size
   is held to the same limit (a small "zip bomb" cannot blow up memory); a stream that does
   not decompress, or stops short, is a 400.
3. Off the event loop: a body of ``decode_off_loop_bytes`` or more, and every compressed body,
   is inflated and decoded on a thread, so that one 30 MiB request (about 0.3 s of JSON) does
   not stall every other request; smaller ones are decoded in place (a thread hop costs more
   than they do).
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol, TypeVar

from granian.rsgi import ProtocolClosed  # type: ignore[attr-defined]  # public, re-exported by an alias

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.http.request import PredictRequest

T = TypeVar("T")


class BodySource(Protocol):
    """What the body is read from: RSGI's HTTP protocol (``await protocol()`` for the whole
    body, ``async for chunk in protocol`` for its chunks)."""

    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


def too_large_message(limit: int, length: str | None) -> str:
    """>>> too_large_message(10, "12")
    'body: expected at most max_body_bytes=10 bytes, got 12'
    """
    return f"body: expected at most max_body_bytes={limit} bytes, got {length or 'more'}"


def check_length(request: PredictRequest, limit: int) -> None:
    """Refuse a declared ``Content-Length`` above ``limit`` before reading anything."""
    length = request.header("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(too_large_message(limit, length))


async def within_limit(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, refused (413) as soon as they exceed ``limit`` bytes; a client that
    leaves before the body's end is a 400."""
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(too_large_message(limit, None))
            yield chunk
    except ProtocolClosed:
        raise BadRequest("body: the connection closed before the whole body arrived") from None


async def read(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The body from its chunks (``within_limit``), joined."""
    parts = [chunk async for chunk in within_limit(chunks, limit) if chunk]
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)


async def read_body(request: PredictRequest, source: BodySource, limit: int) -> bytes:
    """The body of ``request``: in one call when it declares a ``Content-Length`` within
    ``limit`` (``check_length`` refused a larger one), else chunk by chunk (``read``)."""
    length = request.header("content-length")
    if length is not None and length.isdigit() and int(length) <= limit:
        try:
            return await source()
        except ProtocolClosed:  # the client left before its declared body arrived
            raise BadRequest(
                f"body: the connection closed before Content-Length={length} bytes arrived"
            ) from None
    return await read(source, limit)


async def spool(chunks: AsyncIterable[bytes], limit: int, fd: int) -> None:
    """Write the body (``within_limit``) to the open file ``fd`` chunk by chunk as it arrives:
    a whole body is never held (building one 45 MB ``bytes`` stalled the loop for tens of
    milliseconds)."""
    async for chunk in within_limit(chunks, limit):
        write_all(fd, chunk)


def write_all(fd: int, data: bytes) -> None:
    """``data`` written to ``fd`` whole (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Decompress a ``gzip`` or ``deflate`` body, at most ``limit`` bytes of it.

    >>> import gzip
    >>> inflate(gzip.compress(b"[1, 2]"), "gzip", 100)
    b'[1, 2]'
    >>> inflate(gzip.compress(b"0" * 1000), "gzip", 100)
    Traceback (most recent call last):
    gateway.errors.PayloadTooLarge: body: decompressed size exceeds max_body_bytes=100
    """
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


async def decode(
    request: PredictRequest,
    body: bytes,
    parse: Callable[[bytes], T],
    *,
    limit: int,
    off_loop_bytes: int,
) -> T:
    """``parse`` of the (inflated) body: on a thread for large or compressed bodies."""
    encoding = request.content_encoding
    if encoding is None and len(body) < off_loop_bytes:
        return parse(body)
    if encoding is None:
        return await asyncio.to_thread(parse, body)
    return await asyncio.to_thread(lambda: parse(inflate(body, encoding, limit)))
