"""``PredictRequest``: the headers and query of one predict request, as the front received them."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import parse_qs

JSON = "application/json"
OCTETS = "application/octet-stream"


class Headers(Protocol):
    """What the front reads of request headers: a value by lower-case name (RSGI's
    ``scope.headers`` is one)."""

    def get(self, key: str, default: str | None = None) -> str | None: ...


class PredictRequest:
    """Headers and query string of a predict request; its body is read by ``gateway.http.body``.

    >>> request = PredictRequest({"content-encoding": "gzip"}, "model=iris&x=1")
    >>> request.query("model"), request.header("content-encoding"), request.compressed
    ('iris', 'gzip', True)
    """

    __slots__ = ("headers", "query_string")

    def __init__(self, headers: Headers | dict[str, str], query_string: str) -> None:
        self.headers = headers
        self.query_string = query_string

    def header(self, name: str) -> str | None:
        """A request header by lower-case name."""
        return self.headers.get(name)

    def query(self, name: str) -> str | None:
        """A query parameter (the last one wins), or None."""
        if not self.query_string:
            return None
        values = parse_qs(self.query_string).get(name)
        return values[-1] if values else None

    @property
    def content_encoding(self) -> str | None:
        """``gzip`` or ``deflate`` when the body comes compressed (other codings: None)."""
        encoding = self.header("content-encoding")
        return encoding if encoding in ("gzip", "deflate") else None

    @property
    def compressed(self) -> bool:
        return self.content_encoding is not None
