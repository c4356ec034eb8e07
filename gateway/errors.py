"""Gateway errors and the one mapping from an exception to an HTTP status.

Every part of the gateway raises these (or registry errors); only the HTTP edge turns them into
responses, through :func:`status_for`. The prediction log uses the same mapping for its
``status`` column, so the log and the wire always agree.
"""

from __future__ import annotations

import sys

from registry.errors import (
    ArtifactCorrupt,
    InvalidName,
    InvalidRoute,
    ModelNotFound,
    RegistryError,
    RouteConflict,
    VersionNotFound,
)


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class BadRequest(GatewayError, ValueError):
    """The request is malformed: the message names the field, the rule and what was received."""


def too_deep(what: str) -> BadRequest:
    """The error for a JSON body nested deeper than the decoder goes (it recurses once per
    level, up to Python's recursion limit).

    >>> str(too_deep("feedback")).startswith("feedback: JSON nested deeper than")
    True
    """
    return BadRequest(
        f"{what}: JSON nested deeper than the decoder allows (its limit is Python's recursion "
        f"limit, {sys.getrecursionlimit()} levels)"
    )


class UnknownModel(GatewayError, LookupError):
    """No model of that name is served."""


class UnknownVersion(GatewayError, LookupError):
    """The model is served but not that version."""


class PayloadTooLarge(GatewayError):
    """The body is larger than ``max_body_bytes``."""


class Unauthorized(GatewayError):
    """No or a wrong bearer token."""


class Forbidden(GatewayError):
    """The endpoint is disabled (admin API without a configured token)."""


class UnsupportedMediaType(GatewayError):
    """A content type the endpoint does not read."""


class NotSupported(GatewayError):
    """A protocol operation mlgate knows but does not provide (KServe V1 ``:explain``)."""


class Overloaded(GatewayError):
    """The version's queue is full: try again after ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(GatewayError):
    """The model has no loaded version that can serve yet."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LogUnavailable(GatewayError):
    """The prediction log could not take these rows now (a write failed, the feedback helper
    process died): nothing of them was kept, so they can be sent again."""


class RequestTimeout(GatewayError):
    """The request did not finish within ``request_timeout_s``."""


class InferenceFailed(GatewayError):
    """The runtime raised on this request (alone, after its batch failed)."""


class ShuttingDown(GatewayError):
    """The gateway is draining and takes no new work."""


_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BadRequest, 400),
    (InvalidName, 400),
    (InvalidRoute, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (UnknownModel, 404),
    (UnknownVersion, 404),
    (ModelNotFound, 404),
    (VersionNotFound, 404),
    (RouteConflict, 409),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (InferenceFailed, 500),
    (NotSupported, 501),
    (ArtifactCorrupt, 500),
    (RegistryError, 500),
    (Overloaded, 503),
    (NotReady, 503),
    (ShuttingDown, 503),
    (LogUnavailable, 503),
    (RequestTimeout, 504),
)


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception: 4xx for the client's mistakes, 5xx for ours.

    >>> status_for(BadRequest("input 'x': expected FP32, got BYTES"))
    400
    >>> status_for(KeyError("boom"))
    500
    """
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def retry_after(exc: BaseException) -> int | None:
    """Seconds for a ``Retry-After`` header, when the error is temporary."""
    if isinstance(exc, Overloaded | NotReady):
        return exc.retry_after_s
    if isinstance(exc, ShuttingDown | LogUnavailable):
        return 1
    return None
