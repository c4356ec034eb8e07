"""An ASGI front for the hot predict endpoints; everything else goes to the Litestar app.

``POST`` to ``/v2/models/{m}[/versions/{v}]/infer``, ``/v1/models/{m}[/versions/{v}]:predict``
and ``/invocations`` is answered here without Litestar's per-request Request/Response objects and
signature parsing (about a quarter of the event loop's time per request). The operations are
the same functions the Litestar handlers call (``gateway.http.predict``) and errors go through
the same mapping (``responses.error_parts``), so both paths answer byte for byte the same; any
other request, and any path this front does not recognise, is passed to Litestar unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.http import predict
from gateway.http.raw import RawRequest, send_response
from gateway.http.responses import error_parts

if TYPE_CHECKING:
    from litestar import Litestar

    from gateway.metrics import GatewayMetrics
    from gateway.service import Gateway


def match(path: str) -> predict.Operation | None:
    """The operation for a predict path, or None (then Litestar routes it)."""
    if path == "/invocations":
        return predict.Operation("mlflow", None)
    if "%" in path:
        return None
    parts = path.split("/")
    # ['', 'v2', 'models', m, 'infer'] / ['', 'v2', 'models', m, 'versions', v, 'infer']
    if len(parts) == 5 and parts[1] == "v2" and parts[2] == "models" and parts[4] == "infer":
        return predict.Operation("oip", parts[3])
    if len(parts) == 7 and parts[1] == "v2" and parts[2] == "models" and parts[6] == "infer" \
            and parts[4] == "versions":  # fmt: skip
        return predict.Operation("oip", parts[3], parts[5])
    if (
        len(parts) == 4
        and parts[1] == "v1"
        and parts[2] == "models"
        and parts[3].endswith(":predict")
    ):
        return predict.Operation("v1", parts[3][: -len(":predict")])
    if len(parts) == 6 and parts[1] == "v1" and parts[2] == "models" and parts[4] == "versions" \
            and parts[5].endswith(":predict"):  # fmt: skip
        return predict.Operation("v1", parts[3], parts[5][: -len(":predict")])
    return None


class FastPath:
    """ASGI app: predict requests answered directly, the rest by ``app`` (Litestar)."""

    def __init__(self, app: Litestar, gateway: Gateway, metrics: GatewayMetrics) -> None:
        self.app = app
        self.gateway = gateway
        self.metrics = metrics

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        operation = match(scope["path"])
        if operation is None:
            await self.app(scope, receive, send)
            return
        try:
            reply = await operation(self.gateway, RawRequest(scope, receive))
        except Exception as exc:  # noqa: BLE001 - every error becomes {"error": ...}
            status, body, headers = error_parts(exc, self.metrics, scope["method"], scope["path"])
            await send_response(send, body, status=status, headers=headers)
            return
        await send_response(send, reply.body, content_type=reply.content_type,
                            headers=reply.headers)  # fmt: skip
