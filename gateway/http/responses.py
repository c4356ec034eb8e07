"""Response helpers and the one exception -> response edge."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from gateway.codecs import mlflow
from gateway.errors import GatewayError, retry_after, status_for
from gateway.metrics import GatewayMetrics
from registry.errors import RegistryError

log = logging.getLogger("gateway.http")
JSON = "application/json"
_encoder = msgspec.json.Encoder()


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return raw_json(_encoder.encode(value), status, headers)


def raw_json(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(content=body, status_code=status, media_type=JSON, headers=headers)


def error_response(
    message: str, status: int, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return json_response({"error": message}, status, headers)


def error_parts(
    exc: Exception, metrics: GatewayMetrics, method: str, path: str
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, ``{"error": ...}`` body (MLflow's shape on ``/invocations``) and headers for any
    exception: ours by ``status_for``, Litestar's own (unknown path, wrong method, body too
    large) by their status, anything else a 500 that is logged and counted, never a stack
    trace on the wire."""
    status, body, headers = _error_parts(exc, metrics, method, path)
    if path == "/invocations":
        body = mlflow.error_body(status, msgspec.json.decode(body)["error"])
    return status, body, headers


def _error_parts(
    exc: Exception, metrics: GatewayMetrics, method: str, path: str
) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers: list[tuple[str, str]] = []
    if isinstance(exc, HTTPException):
        status = exc.status_code
        message = str(exc.detail) if exc.detail else "error"
        if status == 404:
            message = f"path {path!r}: not found"
        elif status == 405:
            message = f"method {method} not allowed on {path!r}"
        elif status == 413:
            message = f"body: too large ({message})"
        for key, value in (exc.headers or {}).items():
            headers.append((key.lower(), str(value)))
        return status, _encoder.encode({"error": message}), headers
    status = status_for(exc)
    wait = retry_after(exc)
    if wait is not None:
        headers.append(("retry-after", str(wait)))
    if status == 500 and not isinstance(exc, GatewayError | RegistryError):
        kind = type(exc).__name__
        log.error("internal error on %s %s", method, path, exc_info=exc)
        metrics.internal_errors.labels(kind).inc()
        return 500, _encoder.encode({"error": f"internal error ({kind}); see the server log"}), []
    return status, _encoder.encode({"error": str(exc)}), headers


def make_exception_handler(metrics: GatewayMetrics) -> Any:
    """The Litestar exception handler: ``error_parts`` as a Response."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        status, body, headers = error_parts(exc, metrics, request.method, request.url.path)
        return Response(
            content=body,
            status_code=status,
            media_type=JSON,
            headers=dict(headers),
        )

    return handle
