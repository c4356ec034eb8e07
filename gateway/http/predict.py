"""The predict operations of every protocol (OIP V2, KServe V1, MLflow): admit the request,
read and decode its body (``gateway.http.body``), predict, encode the answer. The front
(``gateway.http.front``) runs them for the paths in ``gateway.http.routes``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gateway.codecs import binary, mlflow, oip, v1
from gateway.errors import BadRequest, GatewayError, NotSupported, UnknownModel, UnknownVersion
from gateway.http import body as body_rules
from gateway.http.auth import check_predict_token
from gateway.http.request import JSON, OCTETS, PredictRequest
from gateway.service import traffic_tag
from registry.logschema import TRAFFIC_HEADER

TRAFFIC_HEADER_LOWER = TRAFFIC_HEADER.lower()

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.codecs import Payload
    from gateway.http.body import BodySource
    from gateway.service import Gateway, Prediction


class Reply:
    """A successful answer: body and every header (``content-type`` first)."""

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.body = body
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


# characters a header value must not hold (CR and LF would split the response); tab is allowed
_CONTROL = dict.fromkeys([*(c for c in range(32) if c != 9), 0x7F])


def header_safe(text: str) -> str:
    """``text`` as a header value: latin-1 (others become ``?``), control characters dropped.

    >>> header_safe("a\\r\\nb\\tc\\u20ac")
    'ab\\tc?'
    """
    return text.encode("latin-1", errors="replace").decode("latin-1").translate(_CONTROL)


# (content type, version, route) -> the headers every answer of it starts with, built once
_HEAD: dict[tuple[str, int, str], tuple[tuple[str, str], ...]] = {}


def prediction_headers(prediction: Prediction, content_type: str = JSON) -> list[tuple[str, str]]:
    """``Content-Type``, ``X-Model-Version``, ``X-Route`` and ``X-Request-Id`` of an answer.
    The request id may come from the body (OIP ``id``): it is echoed with control characters
    dropped."""
    key = (content_type, prediction.loaded.version, prediction.route)
    head = _HEAD.get(key)
    if head is None:
        head = _HEAD[key] = (
            ("content-type", content_type),
            ("x-model-version", str(key[1])),
            ("x-route", header_safe(key[2])),
        )
    request_id = prediction.request_id
    if not (request_id.isascii() and request_id.isprintable()):  # generated ids are
        request_id = header_safe(request_id)
    return [*head, ("x-request-id", request_id)]


class Operation:
    """One predict endpoint with its path parameters: ``admit`` (token, model, version:
    before the body is read), then the body (size, compression, decoding), then the
    prediction. ``await op(gw, request, source)`` runs them and returns the ``Reply``."""

    __slots__ = ("bad_version", "kind", "model", "version")

    def __init__(self, kind: str, model: str | None, version: str | None = None) -> None:
        self.kind = kind  # "oip", "v1" or "mlflow" (model None: ?model= or the default)
        self.model = model
        # the path's version, parsed once; a bad one is refused by admit(), after the token
        # and the model (so that a request without a token learns nothing about versions)
        self.version: int | None = None
        self.bad_version: str | None = None
        if version is not None:
            try:
                self.version = parse_version(version)
            except UnknownVersion as exc:
                self.bad_version = str(exc)

    def admit(self, gw: Gateway, request: PredictRequest) -> str:
        """Check the predict token, the model and the version; returns the model's name."""
        check_predict_token(request.header("authorization"), gw.settings.predict_token)
        model = self.model or request.query("model") or default_model(gw)
        gw.models.get(model)  # an unknown model is a 404 whatever the body holds
        if self.bad_version is not None:
            raise UnknownVersion(self.bad_version)
        return model

    def decode(self, request: PredictRequest, body: bytes) -> Payload:
        """The payload of ``body`` (already inflated). Touches no gateway state, so it may
        run off the event loop (large bodies do)."""
        if self.kind == "oip":
            return oip.decode_request(body, request.header(binary.HEADER))
        if self.kind == "v1":
            return v1.V1Payload(body)
        return mlflow.decode_request(body, request.header("content-type") or "")

    async def __call__(self, gw: Gateway, request: PredictRequest, source: BodySource) -> Reply:
        start = time.perf_counter_ns()
        settings = gw.settings
        limit = settings.max_body_bytes
        body_rules.check_length(request, limit)
        model = self.admit(gw, request)
        try:
            body = await body_rules.read_body(request, source, limit)
            payload = await body_rules.decode(
                request,
                body,
                lambda data: self.decode(request, data),
                limit=limit,
                off_loop_bytes=settings.decode_off_loop_bytes,
            )
        except GatewayError as exc:
            gw.rejected(model, exc)
            raise
        prediction = await gw.predict(model, payload, version=self.version, started_ns=start,
                                      **self._identity(gw, request, payload))  # fmt: skip
        return _ENCODERS[self.kind](payload, model, prediction)

    @staticmethod
    def _identity(gw: Gateway, request: PredictRequest, payload: Payload) -> dict[str, str | None]:
        """``request_id`` (the OIP body's ``id``, else the header), ``routing_key`` and the
        synthetic-traffic tag (``X-Mlgate-Traffic``)."""
        request_id = request.header(gw.settings.request_id_header_lower)
        if isinstance(payload, oip.OipPayload) and payload.id:
            request_id = payload.id
        return {
            "request_id": request_id,
            "routing_key": request.header(gw.settings.routing_header_lower),
            "traffic": traffic_tag(request.header(TRAFFIC_HEADER_LOWER)),
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
    if header_length is None:
        return Reply(content, prediction_headers(prediction))
    headers = prediction_headers(prediction, OCTETS)
    headers.append(("inference-header-content-length", str(header_length)))
    return Reply(content, headers)


def _v1_reply(payload: v1.V1Payload, model: str, prediction: Prediction) -> Reply:
    return Reply(v1.encode_response(payload, prediction.outputs), prediction_headers(prediction))


def _mlflow_reply(payload: mlflow.MlflowPayload, model: str, prediction: Prediction) -> Reply:
    return Reply(mlflow.encode_response(prediction.outputs), prediction_headers(prediction))


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
