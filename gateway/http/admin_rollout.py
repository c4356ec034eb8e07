"""Admin API for rollouts: the ``mlgate rollout`` actions over HTTP (bearer token).

``rollout_router(registry=..., logs=..., admin_token=...)`` returns a Litestar ``Router``
mounted at ``/admin/models/{model}/rollout``::

    POST .../start       {"version": 2, "weight": 20}  or  {"version": 2, "steps": [10, 50, 100],
                         "interval_s": 600}
    POST .../weight      {"weight": 50}
    POST .../shadow      {"version": 3, "percent": 100}
    POST .../shadow-off  {} or {"version": 3}
    POST .../promote     {}
    POST .../rollback    {}
    GET  .../status      ?window_s=900

Actions answer 200 ``{"model", "route", "summary"}``; status answers what ``mlgate rollout status
--format json`` prints. Bad input is a 4xx ``{"error": "..."}`` and changes nothing: 400 for a
malformed body or a refused change, 404 for an unknown model, 409 when the compare-and-swap
kept losing, 401 without the right ``Authorization: Bearer <token>``, 403 when no admin token is
configured (the admin API is then disabled).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery

from gateway.errors import GatewayError, status_for, too_deep
from gateway.http.auth import require_admin
from gateway.rollout_status import DEFAULT_WINDOW_S, collect_status, describe
from registry import Registry, rollout
from registry.errors import InvalidRoute, RegistryError
from registry.model import Route

PATH = "/admin/models/{model:str}/rollout"
MAX_WINDOW_S = 366 * 24 * 3600.0  # the longest rollout status window, a year


class StartBody(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    weight: float = 10.0
    steps: list[float] | None = None
    interval_s: float | None = None


class WeightBody(msgspec.Struct, forbid_unknown_fields=True):
    weight: float


class ShadowBody(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    percent: float = 100.0


class ShadowOffBody(msgspec.Struct, forbid_unknown_fields=True):
    version: int | None = None


class EmptyBody(msgspec.Struct, forbid_unknown_fields=True):
    pass


class _AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    if isinstance(exc, _AdminError):
        status = exc.status
    elif isinstance(exc, InvalidRoute) and isinstance(exc.__cause__, LookupError):
        status = 404  # unknown model
    elif isinstance(exc, HTTPException):
        status = exc.status_code
    else:
        status = status_for(exc)
    message = exc.detail if isinstance(exc, HTTPException) else str(exc)
    return Response({"error": message}, status_code=status)


def _admin_guard(
    token: str | None,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        require_admin(connection, token)  # type: ignore[arg-type]  # reads headers only

    return guard


async def _body(request: Request[Any, Any, Any], kind: type[Any]) -> Any:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise _AdminError(400, f"request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise _AdminError(400, f"request body: invalid JSON: {exc}") from exc
    except RecursionError:
        raise _AdminError(400, str(too_deep("request body"))) from None


def _answer(model: str, route: Route) -> dict[str, Any]:
    return {"model": model, "route": msgspec.to_builtins(route), "summary": describe(route)}


class _Actions:
    """Runs rollout actions on a worker thread (registry I/O never blocks the event loop)."""

    def __init__(
        self,
        registry: Registry | Callable[[], Registry],
        *,
        actor: str,
        on_change: Callable[[str], None] | None,
    ) -> None:
        self._registry = registry
        self.actor = actor
        self.on_change = on_change

    @property
    def registry(self) -> Registry:
        return self._registry() if callable(self._registry) else self._registry

    async def act(
        self, model: str, fn: Callable[..., Route], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        call = partial(fn, self.registry, model, *args, actor=self.actor, **kwargs)
        route: Route = await anyio.to_thread.run_sync(call)
        if self.on_change is not None:
            self.on_change(model)
        return _answer(model, route)

    async def status(self, model: str, *, logs: str | None, window_s: float) -> dict[str, Any]:
        call = partial(collect_status, self.registry, model, logs=logs, window_s=window_s)
        result: dict[str, Any] = await anyio.to_thread.run_sync(call)
        return result


def rollout_router(
    *,
    registry: Registry | Callable[[], Registry],
    logs: str | None,
    admin_token: str | None,
    actor: str = "admin-api",
    on_change: Callable[[str], None] | None = None,
) -> Router:
    """The rollout admin routes, bound to one registry and log store.

    ``registry`` may be the registry itself or a zero-argument callable returning it (for an
    app that opens it in its lifespan). Registry work runs on a worker thread, never on the
    event loop. ``on_change(model)`` runs after every applied change (a gateway passes its
    watcher's ``reload`` so that it follows at once instead of at its next poll).
    """

    actions = _Actions(registry, actor=actor, on_change=on_change)
    act = actions.act

    @post("/start", status_code=200)
    async def start(model: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        body: StartBody = await _body(request, StartBody)
        return await act(
            model,
            rollout.start_rollout,
            body.version,
            weight=body.weight,
            steps=body.steps,
            interval_s=body.interval_s,
        )

    @post("/weight", status_code=200)
    async def weight(model: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        body: WeightBody = await _body(request, WeightBody)
        return await act(model, rollout.set_weight, body.weight)

    @post("/shadow", status_code=200)
    async def shadow(model: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        body: ShadowBody = await _body(request, ShadowBody)
        return await act(model, rollout.set_shadow, body.version, percent=body.percent)

    @post("/shadow-off", status_code=200)
    async def shadow_off(model: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        body: ShadowOffBody = await _body(request, ShadowOffBody)
        return await act(model, rollout.clear_shadow, body.version)

    @post("/promote", status_code=200)
    async def promote(model: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        await _body(request, EmptyBody)
        return await act(model, rollout.promote)

    @post("/rollback", status_code=200)
    async def rollback(model: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        await _body(request, EmptyBody)
        return await act(model, rollout.rollback)

    @get(["/", "/status"])
    async def status(
        model: FromPath[str], window_s: FromQuery[float] = DEFAULT_WINDOW_S
    ) -> dict[str, Any]:
        if not 0 < window_s <= MAX_WINDOW_S:  # NaN and inf too; past a year dates overflow
            raise _AdminError(
                400,
                f"query 'window_s': expected seconds > 0 and <= {MAX_WINDOW_S:g}, got {window_s!r}",
            )
        return await actions.status(model, logs=logs, window_s=window_s)

    return Router(
        path=PATH,
        route_handlers=[start, weight, shadow, shadow_off, promote, rollback, status],
        guards=[_admin_guard(admin_token)],
        exception_handlers={
            RegistryError: _error,
            GatewayError: _error,
            _AdminError: _error,
            HTTPException: _error,
        },
    )
