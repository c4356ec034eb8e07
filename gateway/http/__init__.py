"""The Litestar layer: routes, auth, the exception-to-response edge. Nothing else knows HTTP."""

from gateway.http.app import create_app

__all__ = ["create_app"]
