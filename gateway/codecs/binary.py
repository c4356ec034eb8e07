"""Triton's binary tensor data extension: a JSON header followed by raw tensor bytes.

Request: ``Inference-Header-Content-Length`` gives the JSON header's size; each input with
``parameters.binary_data_size`` takes that many bytes from what follows, in input order.
Response: outputs asked for with ``parameters.binary_data`` (or all, with the request parameter
``binary_data_output``) carry ``binary_data_size`` instead of ``data``, and their bytes follow
the JSON header, whose size is sent back in ``Inference-Header-Content-Length``.
"""

from __future__ import annotations

from gateway.errors import BadRequest

HEADER = "inference-header-content-length"


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail of a request body."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequest(
            f"header Inference-Header-Content-Length: expected an integer, got {header_length!r}"
        ) from None
    if size < 0 or size > len(body):
        raise BadRequest(
            f"header Inference-Header-Content-Length: expected 0..{len(body)} "
            f"(the body size), got {size}"
        )
    view = memoryview(body)
    return bytes(view[:size]), view[size:]


class BinaryReader:
    """Hands out consecutive slices of the binary tail to the inputs that declare a size."""

    def __init__(self, tail: memoryview) -> None:
        self._tail = tail
        self._pos = 0

    def take(self, size: object, field: str) -> memoryview:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(
                f"{field}.parameters.binary_data_size: expected a non-negative integer, "
                f"got {size!r}"
            )
        end = self._pos + size
        if end > len(self._tail):
            raise BadRequest(
                f"{field}.parameters.binary_data_size: {size} bytes requested but only "
                f"{len(self._tail) - self._pos} binary bytes remain in the body"
            )
        chunk = self._tail[self._pos : end]
        self._pos = end
        return chunk

    def finish(self) -> None:
        left = len(self._tail) - self._pos
        if left:
            raise BadRequest(
                f"body: {left} binary bytes after the JSON header are not claimed by any "
                f"input's binary_data_size"
            )
