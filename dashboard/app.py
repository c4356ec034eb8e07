"""The dashboard's HTTP app (Litestar): four pages, their JSON API, the actions, static files.

::

    GET  {base}/                              Models page      GET {base}/api/models
    GET  {base}/models/{m}[?a=&b=]            a model (+ diff) GET {base}/api/models/{m}
                                                               GET {base}/api/models/{m}/diff?a=&b=
    GET  {base}/models/{m}/drift[?version=&route=&metric=&window=&feature=]
                                                               GET {base}/api/models/{m}/drift?...
    GET  {base}/events[?model=&kind=]         Events page      GET {base}/api/events?model=&kind=
    POST {base}/api/models/{m}/actions/{action}   promote | rollback | weight | shadow |
                                                  shadow-off | retrain (admin token)

Reading is open unless a read token is set (then ``Authorization: Bearer <token>``, or the
``mlgate_read`` cookie that ``?token=`` sets once). Actions need ``Authorization: Bearer
<admin token>`` (a header, never a cookie, so another site cannot make a browser act) and are
two requests: a preview, then ``{"confirm": true}``. Errors are ``{"error": "..."}`` with a 4xx
naming what was wrong.
"""

from __future__ import annotations

import hmac
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
from litestar import Litestar, MediaType, Request, Response, Router, get, post
from litestar.config.compression import CompressionConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, RawBody

from dashboard import documents
from dashboard.actions import ActionError, Retrain, Runs, default_retrain, outcome, plan
from dashboard.documents import BadQuery
from dashboard.html import pages
from dashboard.settings import DashboardSettings
from dashboard.sources import Sources
from registry import (
    InvalidName,
    InvalidRoute,
    ModelNotFound,
    Registry,
    RegistryError,
    RouteConflict,
    VersionNotFound,
)

if TYPE_CHECKING:
    from collections.abc import Callable

READ_COOKIE = "mlgate_read"
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bearer(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected and hmac.compare_digest(given.encode(), expected.encode()))


def check_read(request: ASGIConnection[Any, Any, Any, Any], settings: DashboardSettings) -> None:
    """Reading is open without a read token; with one, the token (or the admin token)."""
    if not settings.read_token:
        return
    for given in (
        _bearer(request),
        request.cookies.get(READ_COOKIE),
        request.query_params.get("token"),
    ):
        if _same(given, settings.read_token) or _same(given, settings.admin_token):
            return
    raise Denied(401, "dashboard: a read token is required ('Authorization: Bearer <token>')")


def check_admin(request: Request[Any, Any, Any], settings: DashboardSettings) -> None:
    """Actions: 403 when no admin token is configured, 401 when it is missing or wrong."""
    if not settings.admin_token:
        raise Denied(403, "dashboard actions are disabled: set MLGATE_ADMIN_TOKEN (or admin_token)")
    given = _bearer(request)
    if given is None:
        raise Denied(401, "action: expected header 'Authorization: Bearer <admin token>', got none")
    if not _same(given, settings.admin_token):
        raise Denied(401, "action: the admin bearer token is wrong")


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (ModelNotFound, 404),
    (VersionNotFound, 404),
    (InvalidName, 400),
    (InvalidRoute, 409),
    (RouteConflict, 409),
    (BadQuery, 400),
    (RegistryError, 400),
)


def _error(request: Request[Any, Any, Any], exc: Exception, base: str) -> Response[Any]:
    if isinstance(exc, Denied | ActionError):
        status = exc.status
    elif isinstance(exc, HTTPException):
        status = exc.status_code
    else:
        status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 500)
    message = str(exc.detail if isinstance(exc, HTTPException) else exc) or type(exc).__name__
    if status == 500:
        raise exc  # a bug: Litestar logs it and answers 500
    api = request.url.path.startswith(base + "/api/")
    wants_html = "text/html" in (request.headers.get("accept") or "") and not api
    if wants_html:
        form = (
            "<form method='get'><label>read token <input type='password' name='token'></label>"
            " <button>open</button></form>"
            if status == 401 and isinstance(exc, Denied)
            else ""
        )
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>mlgate dashboard</title>"
            f"</head><body><h1>{status}</h1><p>{pages._e(message)}</p>{form}</body></html>"
        )
        return Response(body, status_code=status, media_type=MediaType.HTML)
    return Response({"error": message}, status_code=status, media_type=MediaType.JSON)


def _int_param(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadQuery(f"{name}: expected an integer, got {raw!r}") from None


class Dashboard:
    """The handlers' state: sources, settings, retraining runs, and the base path."""

    def __init__(self, sources: Sources, *, base: str, retrain: Retrain | None = None) -> None:
        self.sources = sources
        self.retrain = retrain
        self.settings = sources.settings
        self.base = base
        self.runs = Runs()

    def doc(self, key: tuple[Any, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A page's JSON document, shared by the page and its ``/api`` twin."""
        return self.sources.cache.get(("doc", *key), compute)

    def page(
        self,
        request: Request[Any, Any, Any],
        title: str,
        active: str,
        key: tuple[Any, ...],
        body: Callable[[], str],
    ) -> Response[str]:
        """The page: its frame at once, with ``<main>`` rendered from the cached figures; when
        there are none yet (the first view after a start, a new filter), the frame comes
        first with ``<main>`` pending, and ``app.js`` fetches it (``?fragment=1``), so the
        first paint never waits for a log or monitor query."""
        cache = self.sources.cache
        if request.query_params.get("fragment"):
            html = cache.get(("page", *key), body)
        else:
            ready = body() if cache.ttl_s <= 0 else cache.peek(("page", *key), body)
            html = pages.layout(
                title=title,
                base=self.base,
                active=active,
                body=ready if ready is not None else pages.pending(title),
                pending=ready is None,
                refresh_s=self.settings.refresh_s,
                admin=bool(self.settings.admin_token),
            )
        response: Response[str] = Response(html, media_type=MediaType.HTML)
        token = request.query_params.get("token")
        if self.settings.read_token and token:
            response.cookies.append(
                Cookie(key=READ_COOKIE, value=token, httponly=True, samesite="strict", path="/")
            )
        return response

    def warm(self) -> None:
        """Compute the Models and Events pages in the background (at start), so the first
        visitor finds their figures ready; the segment index is read on the way."""
        if self.sources.cache.ttl_s > 0:
            self.sources.cache.peek(("page", "models"), lambda: self.models_body())
            self.sources.cache.peek(("page", "events", None, None), lambda: self.events_body())

    def models_body(self) -> str:
        doc = self.doc(("models",), lambda: documents.models_document(self.sources))
        return pages.models_body(doc, self.base)

    def events_body(self, model: str | None = None, kind: str | None = None) -> str:
        doc = self.doc(("events", model, kind), lambda: documents.events_document(
            self.sources, model=model, kind=kind))  # fmt: skip
        return pages.events_body(doc, self.base)


class DriftQuery(NamedTuple):
    """The drift page's parameters, checked."""

    version: int | None
    route: str | None
    metric: str
    window: int | None
    feature: str | None
    limit: int | None
    before: int | None


def _drift_query(request: Request[Any, Any, Any]) -> DriftQuery:
    q = request.query_params
    version, route = _int_param(q.get("version"), "version"), q.get("route") or None
    key = q.get("key")
    if key:  # the page's version/route selector
        v, _, r = key.partition("|")
        version, route = _int_param(v, "version"), r or None
    return DriftQuery(
        version, route, q.get("metric") or "psi", _int_param(q.get("window"), "window"),
        q.get("feature") or None, _int_param(q.get("limit"), "limit"),
        _int_param(q.get("before"), "before"),
    )  # fmt: skip


def _drift_doc(dash: Dashboard, model: str, query: DriftQuery) -> dict[str, Any]:
    return dash.doc(
        ("drift", model, *query),
        lambda: documents.drift_document(
            dash.sources, model, version=query.version, route=query.route, metric=query.metric,
            window=query.window, feature=query.feature, limit=query.limit, before=query.before,
        ),
    )  # fmt: skip


def _known(dash: Dashboard, model: str) -> None:
    """A 404 (400 for a malformed name) before a page's frame is sent."""
    if model not in dash.sources.registry.list():
        dash.sources.registry.route(model)  # InvalidName for a malformed name
        raise ModelNotFound(f"model '{model}' is not registered")


def _filters(dash: Dashboard, request: Request[Any, Any, Any]) -> tuple[str | None, str | None]:
    q = request.query_params
    model, kind = q.get("model") or None, q.get("kind") or None
    if model is not None:
        names = dash.sources.registry.list()
        if model not in names:
            raise BadQuery(
                f"model: '{model}' is not registered (known: {', '.join(names) or 'none'})"
            )
    return model, kind


@get("/", sync_to_thread=True)
def models_page(request: Request[Any, Any, Any], dash: NamedDependency[Dashboard]) -> Response[str]:
    return dash.page(request, "Models", "models", ("models",), dash.models_body)


@get("/api/models", sync_to_thread=True)
def models_api(dash: NamedDependency[Dashboard]) -> dict[str, Any]:
    return dash.doc(("models",), lambda: documents.models_document(dash.sources))


def _model_doc(dash: Dashboard, model: str) -> dict[str, Any]:
    return dash.doc(("model", model), lambda: documents.model_document(dash.sources, model))


@get("/models/{model:str}", sync_to_thread=True)
def model_page(
    request: Request[Any, Any, Any], dash: NamedDependency[Dashboard], model: FromPath[str]
) -> Response[str]:
    a = _int_param(request.query_params.get("a"), "a")
    b = _int_param(request.query_params.get("b"), "b")
    _known(dash, model)

    def body() -> str:
        diff = documents.diff_document(dash.sources, model, a, b) if a and b else None
        return pages.model_body(_model_doc(dash, model), dash.base, diff)

    return dash.page(request, model, "models", ("model", model, a, b), body)


@get("/api/models/{model:str}", sync_to_thread=True)
def model_api(dash: NamedDependency[Dashboard], model: FromPath[str]) -> dict[str, Any]:
    return _model_doc(dash, model)


@get("/api/models/{model:str}/diff", sync_to_thread=True)
def diff_api(
    request: Request[Any, Any, Any], dash: NamedDependency[Dashboard], model: FromPath[str]
) -> dict[str, Any]:
    a = _int_param(request.query_params.get("a"), "a")
    b = _int_param(request.query_params.get("b"), "b")
    if a is None or b is None:
        raise BadQuery("diff: expected two versions, ?a=<version>&b=<version>")
    return documents.diff_document(dash.sources, model, a, b)


@get("/models/{model:str}/drift", sync_to_thread=True)
def drift_page(
    request: Request[Any, Any, Any], dash: NamedDependency[Dashboard], model: FromPath[str]
) -> Response[str]:
    query = _drift_query(request)
    _known(dash, model)
    documents.check_metric(query.metric)
    return dash.page(
        request, f"{model} drift", "models", ("drift", model, *query),
        lambda: pages.drift_body(_drift_doc(dash, model, query), dash.base),
    )  # fmt: skip


@get("/api/models/{model:str}/drift", sync_to_thread=True)
def drift_api(
    request: Request[Any, Any, Any], dash: NamedDependency[Dashboard], model: FromPath[str]
) -> dict[str, Any]:
    return _drift_doc(dash, model, _drift_query(request))


@get("/events", sync_to_thread=True)
def events_page(request: Request[Any, Any, Any], dash: NamedDependency[Dashboard]) -> Response[str]:
    model, kind = _filters(dash, request)
    return dash.page(
        request, "Events", "events", ("events", model, kind), lambda: dash.events_body(model, kind)
    )


@get("/api/events", sync_to_thread=True)
def events_api(request: Request[Any, Any, Any], dash: NamedDependency[Dashboard]) -> dict[str, Any]:
    model, kind = _filters(dash, request)
    return dash.doc(("events", model, kind), lambda: documents.events_document(
        dash.sources, model=model, kind=kind))  # fmt: skip


def _params(body: bytes) -> dict[str, Any]:
    try:
        params = msgspec.json.decode(body) if body.strip() else {}
    except msgspec.DecodeError as exc:
        raise ActionError(
            400, f"action body: expected a JSON object, got invalid JSON: {exc}"
        ) from None
    if not isinstance(params, dict):
        raise ActionError(400, f"action body: expected a JSON object, got {type(params).__name__}")
    return params


@post(
    "/api/models/{model:str}/actions/{action:str}",
    sync_to_thread=True,
    status_code=200,
    opt={"open": True},
)
def act(
    request: Request[Any, Any, Any],
    dash: NamedDependency[Dashboard],
    model: FromPath[str],
    action: FromPath[str],
    body: RawBody,
) -> Response[Any]:
    check_admin(request, dash.settings)
    params = _params(body)
    reg = dash.sources.registry
    if model not in reg.list():
        raise ModelNotFound(f"model '{model}' is not registered")
    step = plan(reg, model, action, params, retrain=dash.retrain)
    generation = reg.route(model).generation
    answer: dict[str, Any] = {"action": action, "model": model, "summary": step.summary}
    if params.get("confirm") is not True:
        return Response({"confirm_required": True, **answer, "generation": generation})
    seen = params.get("generation")
    if seen is not None and seen != generation:
        raise ActionError(
            409,
            f"model '{model}': the route changed since the confirmation (generation "
            f"{seen} -> {generation}); review it and confirm again",
        )
    dash.sources.cache.clear()
    if step.background:
        dash.runs.start(step.run, name=f"{action}-{model}")
        return Response({"done": False, "started": True, **answer}, status_code=202)
    return Response({"done": True, **answer, **outcome(step.run())})


@get("/static/{name:str}", opt={"open": True})
async def static(name: FromPath[str]) -> Response[bytes]:
    if name not in STATIC:
        raise NotFoundException(f"static file {name!r} does not exist")
    data = resources.files("dashboard.static").joinpath(name).read_bytes()
    return Response(data, media_type=STATIC[name], headers={"cache-control": "public, max-age=300"})


READ_HANDLERS = [models_page, models_api, model_page, model_api, diff_api, drift_page,
                 drift_api, events_page, events_api]  # fmt: skip


def _router(dash: Dashboard) -> Router:
    """The dashboard's handlers under ``dash.base`` ("" at the root, or a mount path)."""

    def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        return _error(request, exc, dash.base)

    def read_guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if not handler.opt.get("open"):  # actions check the admin token themselves
            check_read(connection, dash.settings)

    return Router(
        path=dash.base or "/",
        route_handlers=[*READ_HANDLERS, act, static],
        dependencies={"dash": Provide(lambda: dash, sync_to_thread=False, use_cache=True)},
        guards=[read_guard],
        exception_handlers={Exception: on_error},
        include_in_schema=False,
    )


def dashboard_router(
    registry: Registry,
    *,
    logs_url: str | None,
    monitor_db: str | None,
    settings: DashboardSettings | None = None,
    base: str = "/ui",
    retrain: Retrain | None = None,
) -> tuple[Router, Runs]:
    """The dashboard as a Litestar ``Router`` under ``base``, to register in another app
    (``mlgate serve`` mounts it in the gateway's app), with the retraining runs it starts
    (join them on shutdown)."""
    settings = settings or DashboardSettings.from_mapping()
    sources = Sources(registry, logs_url=logs_url, monitor_db=monitor_db, settings=settings)
    dash = Dashboard(sources, base=base, retrain=retrain or default_retrain(registry, logs_url))
    return _router(dash), dash.runs


def create_app(
    registry: Registry,
    *,
    logs_url: str | None,
    monitor_db: str | None,
    settings: DashboardSettings | None = None,
    base: str = "",
    retrain: Retrain | None = None,
) -> Litestar:
    """A Litestar app serving the dashboard at ``base`` ("" for the root)."""
    settings = settings or DashboardSettings.from_mapping()
    sources = Sources(registry, logs_url=logs_url, monitor_db=monitor_db, settings=settings)
    dash = Dashboard(sources, base=base, retrain=retrain or default_retrain(registry, logs_url))
    return Litestar(
        route_handlers=[_router(dash)],
        openapi_config=None,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        on_startup=[dash.warm],
        on_shutdown=[lambda: dash.runs.join(30.0)],
    )
