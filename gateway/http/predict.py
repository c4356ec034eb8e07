"""The predict operations of every protocol, on a request (``BaseRequest``): shared by the Litestar
handlers and the ASGI fast path, so both answer byte for byte the same."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gateway.codecs import binary, mlflow, oip, v1
from gateway.errors import BadRequest, GatewayError, UnknownModel, UnknownVersion
from gateway.http.auth import check_predict_token
from gateway.http.raw import JSON, OCTETS

if TYPE_CHECKING:
    from gateway.http.raw import BaseRequest
    from gateway.service import Gateway, Prediction


class Reply:
    """A successful answer: body, content type and extra headers."""

    __slots__ = ("body", "content_type", "headers")

    def __init__(
        self, body: bytes, *, content_type: bytes = JSON, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.body = body
        self.content_type = content_type
        self.headers = headers


def parse_version(text: str) -> int:
    try:
        version = int(text)
    except ValueError:
        raise UnknownVersion(f"version {text!r}: expected a positive integer") from None
    if version < 1:
        raise UnknownVersion(f"version {text!r}: expected a positive integer")
    return version


def split_verb(spec: str) -> str:
    """``iris:predict`` -> ``iris`` (KServe V1 puts the verb after a colon)."""
    name, sep, verb = spec.partition(":")
    if not sep or verb != "predict":
        raise BadRequest(f"path: expected /v1/models/<model>:predict, got {spec!r}")
    return name


# bytes a header value must not hold (CR and LF would split the response); tab is allowed
_CONTROL = bytes(c for c in range(32) if c != 9) + b"\x7f"


def prediction_headers(prediction: Prediction) -> list[tuple[bytes, bytes]]:
    """``X-Model-Version``, ``X-Route`` and ``X-Request-Id`` of an answer. The request id may
    come from the body (OIP ``id``): it is echoed with control characters dropped."""
    request_id = prediction.request_id.encode("latin-1", errors="replace")
    return [
        (b"x-model-version", str(prediction.version).encode()),
        (b"x-route", prediction.route.encode()),
        (b"x-request-id", request_id.translate(None, _CONTROL)),
    ]


async def oip_infer(gw: Gateway, request: BaseRequest, model: str, version: int | None) -> Reply:
    start = time.perf_counter_ns()
    settings = gw.settings
    check_predict_token(request.header("authorization"), settings.predict_token)
    gw.models.get(model)  # an unknown model is a 404 whatever the body holds
    try:
        body = await request.body(settings.max_body_bytes)
        payload = oip.decode_request(body, request.header(binary.HEADER))
    except GatewayError as exc:
        gw.rejected(model, exc)
        raise
    prediction = await gw.predict(
        model,
        payload,
        version=version,
        request_id=payload.id or request.header(settings.request_id_header.lower()),
        routing_key=request.header(settings.routing_header.lower()),
        started_ns=start,
    )
    content, header_length = oip.encode_response(
        model=model,
        version=prediction.version,
        request_id=payload.id,
        outputs=prediction.outputs,
        requested=payload.chosen,
        spec=prediction.loaded.outputs,
    )
    headers = prediction_headers(prediction)
    if header_length is None:
        return Reply(content, headers=headers)
    headers.append((b"inference-header-content-length", str(header_length).encode()))
    return Reply(content, content_type=OCTETS, headers=headers)


async def v1_predict(gw: Gateway, request: BaseRequest, model: str, version: int | None) -> Reply:
    start = time.perf_counter_ns()
    settings = gw.settings
    check_predict_token(request.header("authorization"), settings.predict_token)
    gw.models.get(model)  # an unknown model is a 404 whatever the body holds
    try:
        payload = v1.V1Payload(await request.body(settings.max_body_bytes))
    except GatewayError as exc:
        gw.rejected(model, exc)
        raise
    prediction = await gw.predict(
        model,
        payload,
        version=version,
        request_id=request.header(settings.request_id_header.lower()),
        routing_key=request.header(settings.routing_header.lower()),
        started_ns=start,
    )
    body = v1.encode_response(payload, prediction.outputs)
    return Reply(body, headers=prediction_headers(prediction))


async def mlflow_invocations(gw: Gateway, request: BaseRequest) -> Reply:
    start = time.perf_counter_ns()
    settings = gw.settings
    check_predict_token(request.header("authorization"), settings.predict_token)
    model = request.query("model") or default_model(gw)
    gw.models.get(model)  # an unknown model is a 404 whatever the body holds
    try:
        body = await request.body(settings.max_body_bytes)
        payload = mlflow.decode_request(body, request.header("content-type") or "")
    except GatewayError as exc:
        gw.rejected(model, exc)
        raise
    prediction = await gw.predict(
        model,
        payload,
        request_id=request.header(settings.request_id_header.lower()),
        routing_key=request.header(settings.routing_header.lower()),
        started_ns=start,
    )
    content = mlflow.encode_response(prediction.outputs)
    return Reply(content, headers=prediction_headers(prediction))


def default_model(gw: Gateway) -> str:
    if gw.settings.default_model:
        return gw.settings.default_model
    names = sorted(gw.models.states)
    if len(names) == 1:
        return names[0]
    raise UnknownModel(
        f"/invocations: expected ?model=<name> (no default_model set and {len(names)} models "
        f"are served: {names[:20]})"
    )
