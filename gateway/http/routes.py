"""Which requests the front answers itself: the predict endpoints of every protocol.

A predict route is a method, a path template and the ``Operation`` kind that answers it;
``{name}`` matches one path segment. To serve a new predict endpoint, add a line to
``PREDICT_ROUTES`` (its operation in ``gateway.http.predict``). Feedback, whose bodies are as
large as predict's, is answered by the front too (``gateway.http.feedback``). Every other
endpoint (metadata, health, admin, metrics) is a Litestar route handler listed in
``gateway.http.app``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.http.feedback import FeedbackOperation
from gateway.http.predict import Operation, split_verb


class PredictRoute(NamedTuple):
    method: str
    template: str
    kind: str  # Operation.kind: "oip", "v1" or "mlflow"; or "feedback" (FeedbackOperation)


PREDICT_ROUTES: tuple[PredictRoute, ...] = (
    PredictRoute("POST", "/v2/models/{model}/infer", "oip"),
    PredictRoute("POST", "/v2/models/{model}/versions/{version}/infer", "oip"),
    # KServe V1 puts the verb after a colon: {spec} is "<model>:predict"
    PredictRoute("POST", "/v1/models/{spec}", "v1"),
    PredictRoute("POST", "/v1/models/{model}/versions/{spec}", "v1"),
    PredictRoute("POST", "/invocations", "mlflow"),
    PredictRoute("POST", "/v2/models/{model}/feedback", "feedback"),
)


def _pattern(template: str) -> re.Pattern[str]:
    """``/v2/models/{model}/infer`` -> a regex with one named group per ``{name}``."""
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ..., literal
    regex = "".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


_COMPILED = [(route, _pattern(route.template)) for route in PREDICT_ROUTES]


PredictOperation = Operation | FeedbackOperation
_CACHE_SIZE = 4096  # distinct predict paths remembered (models x versions x protocols)
# (method, path) -> its operation (immutable, shared by every request on that path), or None
_cache: dict[tuple[str, str], PredictOperation | None] = {}


def _operation(method: str, path: str) -> PredictOperation | None:
    for route, pattern in _COMPILED:
        if route.method != method:
            continue
        found = pattern.match(path)
        if found is None:
            continue
        params = found.groupdict()
        if route.kind == "feedback":
            return FeedbackOperation(params["model"])
        if route.kind == "v1":
            # split_verb refuses "<model>:other" with a 400 that names the expected form
            spec = params["spec"]
            if "model" in params:
                return Operation("v1", params["model"], split_verb(spec))
            return Operation("v1", split_verb(spec))
        return Operation(route.kind, params.get("model"), params.get("version"))
    return None


def match(method: str, path: str) -> PredictOperation | None:
    """The operation for a predict request, or None (then the Litestar app answers it).
    Built once per distinct path (a path that is refused with a 400 is not remembered).

    >>> op = match("POST", "/v2/models/iris/versions/2/infer")
    >>> op.kind, op.model, op.version
    ('oip', 'iris', 2)
    >>> match("POST", "/v1/models/iris:predict").model
    'iris'
    >>> match("POST", "/v1/models/iris:predict") is match("POST", "/v1/models/iris:predict")
    True
    >>> match("GET", "/v2/models/iris/infer") is None, match("POST", "/v2/models") is None
    (True, True)
    """
    key = (method, path)
    try:
        return _cache[key]
    except KeyError:
        pass
    operation = _operation(method, path)
    if len(_cache) >= _CACHE_SIZE:  # many distinct paths (a scan): start over
        _cache.clear()
    _cache[key] = operation
    return operation
