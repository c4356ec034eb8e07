"""Bearer-token checks for the admin API (required) and the predict API (optional)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request

from gateway.errors import Forbidden, Unauthorized


def _bearer(request: Request[Any, Any, Any]) -> str | None:
    return _parse_bearer(request.headers.get("authorization"))


def _parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def require_admin(request: Request[Any, Any, Any], token: str | None) -> None:
    """Admin endpoints: 403 when no token is configured (admin disabled), 401 when the
    request's bearer token is missing or wrong."""
    check_admin_token(request.headers.get("authorization"), token)


def check_admin_token(authorization: str | None, token: str | None) -> None:
    """The admin token check on a raw ``Authorization`` header value (HTTP or gRPC)."""
    if not token:
        raise Forbidden(
            "admin API is disabled: set MLGATE_ADMIN_TOKEN (or admin_token) to enable it"
        )
    given = _parse_bearer(authorization)
    if given is None:
        raise Unauthorized("admin API: expected header 'Authorization: Bearer <token>', got none")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("admin API: the bearer token is wrong")


def require_predict(request: Request[Any, Any, Any], token: str | None) -> None:
    """Predict endpoints: open unless a predict token is configured."""
    check_predict_token(request.headers.get("authorization"), token)


def check_predict_token(authorization: str | None, token: str | None) -> None:
    """The predict token check on a raw ``Authorization`` header value."""
    if not token:
        return
    given = _parse_bearer(authorization)
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized(
            "predict API: expected header 'Authorization: Bearer <predict token>'"
            + ("" if given is None else ", got a wrong token")
        )
