"""``inference.GRPCInferenceService``: the OIP RPCs (and Triton's model configuration) on a
``Gateway``.

Each RPC does what its HTTP twin does, through the same objects: ``ModelInfer`` decodes into
the REST codec's payload and calls ``Gateway.predict`` (routing, validation, batcher, limits,
prediction log, metrics); metadata comes from the same builders. Errors become a gRPC status
whose code follows ``gateway.errors.status_for`` and whose details name the field.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

import gateway
from gateway.codecs.oip import EXTENSIONS, SERVER_NAME, model_metadata
from gateway.codecs.triton import model_config, model_statistics, repository_index
from gateway.errors import GatewayError, UnknownVersion
from gateway.grpc import codec
from gateway.grpc import oip_pb2 as pb
from gateway.grpc.status import code_for
from gateway.http.auth import check_admin_token, check_predict_token
from gateway.repository import load_model, unload_model
from gateway.service import traffic_tag
from registry.errors import RegistryError
from registry.logschema import TRAFFIC_HEADER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeAlias

    from grpc.aio import ServicerContext

    from gateway.models import LoadedVersion, ModelState
    from gateway.service import Gateway

    Context: TypeAlias = ServicerContext[Any, Any]

log = logging.getLogger("gateway.grpc")
SERVICE = "inference.GRPCInferenceService"


def parse_version(text: str) -> int | None:
    """The version of a request's ``version`` field; empty means "let routing choose".

    >>> parse_version(""), parse_version("3")
    (None, 3)
    """
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UnknownVersion(f"version {text!r}: expected a positive integer")
    return int(text)


class InferenceService:
    """The RPC implementations; ``handler()`` registers them with a ``grpc.aio`` server."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.settings = gw.settings
        self.version_text = str(getattr(gateway, "__version__", "0.1.0"))

    def handler(self) -> grpc.GenericRpcHandler:
        """A generic handler for every RPC of ``oip.proto``'s service that this class has."""
        methods: dict[str, grpc.RpcMethodHandler] = {}
        service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
        for method in service.methods:
            implementation = getattr(self, method.name, None)
            if implementation is None:
                continue  # the server answers UNIMPLEMENTED
            request_type = getattr(pb, method.input_type.name)
            response_type = getattr(pb, method.output_type.name)
            methods[method.name] = grpc.unary_unary_rpc_method_handler(
                self._guarded(implementation),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    def _guarded(
        self, implementation: Callable[[Any, Context], Awaitable[Any]]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def rpc(request: Any, context: Context) -> Any:
            try:
                return await implementation(request, context)
            except Exception as exc:  # noqa: BLE001 - every error becomes a status, never a crash
                await self._abort(context, implementation.__name__, exc)

        return rpc

    async def _abort(self, context: Context, method: str, exc: Exception) -> None:
        code = code_for(exc)
        if code is grpc.StatusCode.INTERNAL and not isinstance(exc, GatewayError | RegistryError):
            kind = type(exc).__name__
            log.error("internal error in gRPC %s", method, exc_info=exc)
            self.gw.metrics.internal_errors.labels(kind).inc()
            await context.abort(code, f"internal error ({kind}); see the server log")
        await context.abort(code, str(exc))

    # -- health and metadata ------------------------------------------------------------------
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> Any:
        return pb.ServerReadyResponse(ready=self.gw.models.ready and not self.gw.closing)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> Any:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self.version_text, extensions=EXTENSIONS
        )

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> Any:
        state = self.gw.state(request.name)
        version = parse_version(request.version)
        ready = state.champion is not None if version is None else version in state.versions
        return pb.ModelReadyResponse(ready=ready)

    def _loaded(self, name: str, version_text: str) -> tuple[ModelState, LoadedVersion]:
        state = self.gw.state(name)
        version = parse_version(version_text)
        loaded = state.choose_champion()[0] if version is None else state.explicit(version)[0]
        return state, loaded

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> Any:
        state, loaded = self._loaded(request.name, request.version)
        metadata = model_metadata(state, loaded)
        metadata.pop("parameters")  # not a field of the gRPC message
        return json_format.ParseDict(metadata, pb.ModelMetadataResponse())

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> Any:
        _, loaded = self._loaded(request.name, request.version)
        config = json_format.ParseDict(model_config(loaded, self.settings), pb.ModelConfig())
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Context) -> Any:
        states = self.gw.models.states
        if not request.name:
            stats = model_statistics(self.gw.metrics, [states[n] for n in sorted(states)])
        else:
            _, loaded = self._loaded(request.name, request.version or "")
            version = loaded.version if request.version else None
            stats = model_statistics(self.gw.metrics, [self.gw.state(request.name)], version)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    # -- repository -------------------------------------------------------------------------
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Context) -> Any:
        index = repository_index(self.gw.models.states, ready_only=request.ready)
        return json_format.ParseDict({"models": index}, pb.RepositoryIndexResponse())

    def _admin(self, context: Context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        check_admin_token(_text(metadata.get("authorization")), self.settings.admin_token)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> Any:
        self._admin(context)
        await load_model(
            self.gw,
            request.model_name,
            timeout_s=self.settings.request_timeout_s,
            parameters=dict(request.parameters),
        )
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> Any:
        self._admin(context)
        self.gw.state(request.model_name)
        unload_model(request.model_name)

    # -- inference ----------------------------------------------------------------------------
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> Any:
        start = time.perf_counter_ns()
        metadata = dict(context.invocation_metadata() or ())
        check_predict_token(_text(metadata.get("authorization")), self.settings.predict_token)
        gw = self.gw
        model = request.model_name
        gw.models.get(model)  # an unknown model is NOT_FOUND whatever the request holds
        version = parse_version(request.model_version)
        try:
            payload = codec.decode_request(request)
        except GatewayError as exc:
            gw.rejected(model, exc)
            raise
        request_id = payload.id or _text(metadata.get(self.settings.request_id_header_lower))
        prediction = await gw.predict(
            model,
            payload,
            version=version,
            request_id=request_id,
            routing_key=_text(metadata.get(self.settings.routing_header_lower)),
            started_ns=start,
            traffic=traffic_tag(_text(metadata.get(TRAFFIC_HEADER.lower()))),
        )
        context.set_trailing_metadata(
            (
                ("x-model-version", str(prediction.version)),
                ("x-route", prediction.route),
                ("x-request-id", _printable(prediction.request_id)),
            )
        )
        return codec.encode_response(payload, prediction, raw=bool(request.raw_input_contents))


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _printable(text: str) -> str:
    """A metadata value: printable ASCII only (a request id may come from the client).

    >>> _printable("ab\\r\\nc\\u00e9")
    'abc'
    """
    return "".join(c for c in text if " " <= c <= "~")
