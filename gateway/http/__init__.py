"""The HTTP layer: the RSGI front (predict), the Litestar app (everything else), auth and the
exception-to-response edge. Nothing else knows HTTP."""

from gateway.http.app import create_app
from gateway.http.front import GatewayFront

__all__ = ["GatewayFront", "create_app"]
