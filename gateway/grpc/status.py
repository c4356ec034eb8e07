"""The gateway's errors as gRPC status codes: one table, derived from the HTTP mapping.

``gateway.errors.status_for`` decides what kind of failure an exception is (a 4xx for the
client's mistakes, a 5xx for ours); this module only renames that decision for gRPC, so the
prediction log's ``status`` column, ``/metrics`` and both transports always agree.
"""

from __future__ import annotations

import grpc

from gateway.errors import status_for

# HTTP status -> gRPC code, after the mapping in google/rpc/code.proto
_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def code_for_status(status: int) -> grpc.StatusCode:
    """The gRPC code of an HTTP status.

    >>> code_for_status(400).name
    'INVALID_ARGUMENT'
    >>> code_for_status(418).name
    'UNKNOWN'
    """
    return _CODES.get(status, grpc.StatusCode.UNKNOWN)


def code_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC code of an exception (what ``status_for`` makes of it).

    >>> from gateway.errors import Overloaded
    >>> code_for(Overloaded("queue full")).name
    'UNAVAILABLE'
    """
    return code_for_status(status_for(exc))
