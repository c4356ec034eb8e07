"""The predict operations of every protocol, on a request (``BaseRequest``): shared by the Litestar
handlers and the ASGI fast path, so both answer byte for byte the same."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any

from gateway.codecs import binary, mlflow, oip, v1
from gateway.errors import BadRequest, GatewayError, NotSupported, UnknownModel, UnknownVersion
from gateway.http.auth import check_predict_token
from gateway.http.raw import JSON, OCTETS

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.codecs import Payload
    from gateway.http.raw import BaseRequest
    from gateway.service import Gateway, Pending, Prediction


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
    if sep and verb == "explain":
        raise NotSupported(
            f"model {name!r}: :explain is not provided by mlgate (no explainer is served); "
            f"use :predict"
        )
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


class Staged:
    """A predict request queued for its batch: ``reply()`` once ``pending.future`` is done."""

    __slots__ = ("encode", "gateway", "pending")

    def __init__(
        self, gateway: Gateway, pending: Pending, encode: Callable[[Prediction], Reply]
    ) -> None:
        self.gateway = gateway
        self.pending = pending
        self.encode = encode

    def reply(self) -> Reply:
        """The answer (or the request's ``GatewayError``, raised)."""
        return self.encode(self.gateway.finish(self.pending))


class Operation:
    """One predict endpoint with its path parameters: ``admit`` (token, model: before the
    body is read), ``decode``, then ``queue`` (validate, batch). ``await op(gw, request)``
    runs them and waits; the HTTP protocol calls them itself and answers from a callback."""

    __slots__ = ("kind", "model", "version", "version_text")

    def __init__(self, kind: str, model: str | None, version: str | None = None) -> None:
        self.kind = kind  # "oip", "v1" or "mlflow" (model None: ?model= or the default)
        self.model = model
        self.version_text = version  # from the path, checked by admit()
        self.version: int | None = None

    def admit(self, gw: Gateway, request: BaseRequest) -> str:
        """Check the predict token, the model and the version; returns the model's name."""
        check_predict_token(request.header("authorization"), gw.settings.predict_token)
        model = self.model or request.query("model") or default_model(gw)
        gw.models.get(model)  # an unknown model is a 404 whatever the body holds
        if self.version_text is not None:
            self.version = parse_version(self.version_text)
        return model

    def decode(self, request: BaseRequest, body: bytes) -> Payload:
        """The payload of ``body`` (already inflated). Touches no gateway state, so it may
        run off the event loop (large bodies do)."""
        if self.kind == "oip":
            return oip.decode_request(body, request.header(binary.HEADER))
        if self.kind == "v1":
            return v1.V1Payload(body)
        return mlflow.decode_request(body, request.header("content-type") or "")

    def queue(self, gw: Gateway, request: BaseRequest, model: str, payload: Payload,
              start: int) -> Staged:  # fmt: skip
        """Validate the payload against the routed version and queue it for a batch; the
        answer is ``staged.reply()`` once ``staged.pending.future`` is done."""
        pending = gw.submit(model, payload, version=self.version, started_ns=start,
                            **self._identity(gw, request, payload))  # fmt: skip
        return Staged(gw, pending, functools.partial(_ENCODERS[self.kind], payload, model))

    async def __call__(self, gw: Gateway, request: BaseRequest) -> Reply:
        start = time.perf_counter_ns()
        model = self.admit(gw, request)
        try:
            body = await request.body(gw.settings.max_body_bytes)
            if len(body) >= gw.settings.decode_off_loop_bytes:
                payload = await asyncio.to_thread(self.decode, request, body)
            else:
                payload = self.decode(request, body)
        except GatewayError as exc:
            gw.rejected(model, exc)
            raise
        prediction = await gw.predict(model, payload, version=self.version, started_ns=start,
                                      **self._identity(gw, request, payload))  # fmt: skip
        return _ENCODERS[self.kind](payload, model, prediction)

    @staticmethod
    def _identity(gw: Gateway, request: BaseRequest, payload: Payload) -> dict[str, str | None]:
        """``request_id`` (the OIP body's ``id``, else the header) and ``routing_key``."""
        request_id = request.header(gw.settings.request_id_header_lower)
        if isinstance(payload, oip.OipPayload) and payload.id:
            request_id = payload.id
        return {
            "request_id": request_id,
            "routing_key": request.header(gw.settings.routing_header_lower),
        }


def _oip_reply(payload: oip.OipPayload, model: str, prediction: Prediction) -> Reply:
    content, header_length = oip.encode_response(
        model=model,
        version=prediction.version,
        request_id=payload.id,
        outputs=prediction.outputs,
        requested=payload.chosen,
        spec=prediction.loaded.outputs,
        class_counts=payload.class_counts,
    )
    headers = prediction_headers(prediction)
    if header_length is None:
        return Reply(content, headers=headers)
    headers.append((b"inference-header-content-length", str(header_length).encode()))
    return Reply(content, content_type=OCTETS, headers=headers)


def _v1_reply(payload: v1.V1Payload, model: str, prediction: Prediction) -> Reply:
    return Reply(v1.encode_response(payload, prediction.outputs),
                 headers=prediction_headers(prediction))  # fmt: skip


def _mlflow_reply(payload: mlflow.MlflowPayload, model: str, prediction: Prediction) -> Reply:
    return Reply(mlflow.encode_response(prediction.outputs),
                 headers=prediction_headers(prediction))  # fmt: skip


_ENCODERS: dict[str, Callable[[Any, str, Prediction], Reply]] = {
    "oip": _oip_reply,
    "v1": _v1_reply,
    "mlflow": _mlflow_reply,
}


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
