"""The OpenAPI 3.1 document of the gateway's HTTP API, served at ``GET /openapi.json``.

Written by hand because the predict endpoints are answered by the front itself
(``gateway.http.routes``), not by Litestar route handlers, and Litestar would not see them.
``tests/gateway/test_openapi.py`` checks that every route the front and the Litestar app answer
is in here (and nothing else), and runs schemathesis against a live ``mlgate serve`` with it.
To add an endpoint, add its path below.
"""

from __future__ import annotations

from typing import Any

import gateway
from gateway.http.admin_rollout import MAX_WINDOW_S

JSON = "application/json"
DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES"]  # fmt: skip
ERRORS = {
    "400": "malformed body, wrong shape, datatype, feature or value; a parser limit, named",
    "401": "a missing or wrong bearer token",
    "403": "the admin API with no admin token configured, or a wrong token",
    "404": "unknown model, version or path",
    "413": "body or rows past max_body_bytes / max_request_rows",
    "415": "a content type or encoding the endpoint does not read",
    "503": "model loading, queue full, stopping, or feedback labels not written (Retry-After)",
    "504": "past request_timeout_s",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, example: str, where: str = "path", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", **schema},
        "example": example,
    }


MODEL = _param("model", "iris", pattern="^[a-z0-9][a-z0-9._-]{0,63}$")
VERSION = _param("version", "1", pattern="^[0-9]+$")


def _answers(ok: str, schema: dict[str, Any] | None = None, *errors: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {"description": ok, "content": {JSON: {"schema": schema or {"type": "object"}}}}
    }
    for code in errors or ("400", "404"):
        out[code] = {"description": ERRORS[code], "content": {JSON: {"schema": _ref("Error")}}}
    return out


def _op(
    summary: str,
    tag: str,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    answers: dict[str, Any] | None = None,
    *,
    admin: bool = False,
    predict: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": answers or _answers("ok")}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if admin:
        op["security"] = [{"adminToken": []}]
    elif predict:
        op["security"] = [{}, {"predictToken": []}]  # open unless predict_token is set
    return op


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


INFER = _op(
    "OIP inference (also Triton's binary tensor extension, gzip/deflate bodies)",
    "oip",
    None,
    _json_body(_ref("InferRequest")),
    _answers("outputs", _ref("InferResponse"), "400", "401", "404", "413", "415", "503", "504"),
    predict=True,
)
V1_PREDICT = _op(
    "KServe V1 predict: instances (rows or records) or inputs (columns or rows)",
    "kserve-v1",
    None,
    _json_body(_ref("V1Request")),
    _answers("predictions", _ref("V1Response"), "400", "401", "404", "413", "415", "503", "504"),
    predict=True,
)


def _get(summary: str, tag: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": _op(summary, tag, params)}


def _paths() -> dict[str, Any]:
    mv = [MODEL, VERSION]
    rollout_body = {
        "start": {"type": "object", "required": ["version"], "additionalProperties": False,
                  "properties": {"version": {"type": "integer"}, "weight": {"type": "number"},
                                 "steps": {"type": ["array", "null"],
                                           "items": {"type": "number"}},
                                 "interval_s": {"type": ["number", "null"]}}},
        "weight": {"type": "object", "required": ["weight"], "additionalProperties": False,
                   "properties": {"weight": {"type": "number"}}},
        "shadow": {"type": "object", "required": ["version"], "additionalProperties": False,
                   "properties": {"version": {"type": "integer"}, "percent": {"type": "number"}}},
        "shadow-off": {"type": "object", "additionalProperties": False,
                       "properties": {"version": {"type": ["integer", "null"]}}},
        "promote": {"type": "object", "additionalProperties": False},
        "rollback": {"type": "object", "additionalProperties": False},
    }  # fmt: skip
    admin_errors = ("400", "401", "403", "404")
    paths: dict[str, Any] = {
        "/": _get("KServe V1 liveness", "kserve-v1"),
        "/v2": _get("OIP server metadata", "oip"),
        "/v2/health/live": _get("OIP liveness", "oip"),
        "/v2/health/ready": _get("OIP readiness: every routed champion is serving", "oip"),
        "/v2/models/{model}": _get("OIP model metadata", "oip", [MODEL]),
        "/v2/models/{model}/versions/{version}": _get("OIP version metadata", "oip", mv),
        "/v2/models/{model}/ready": _get("OIP model readiness", "oip", [MODEL]),
        "/v2/models/{model}/versions/{version}/ready": _get("OIP version readiness", "oip", mv),
        "/v2/models/{model}/infer": {"post": {**INFER, "parameters": [MODEL]}},
        "/v2/models/{model}/versions/{version}/infer": {"post": {**INFER, "parameters": mv}},
        "/v2/models/{model}/feedback": {
            "post": _op(
                "Ground-truth labels for logged predictions (joined on the request id)",
                "feedback",
                [MODEL],
                _json_body(_ref("Feedback")),
                _answers(
                    "label counts: received, accepted into the log, matched / unmatched to a "
                    "prediction this worker answered recently",
                    _ref("FeedbackCounts"),
                    "400", "401", "404", "413", "503",
                ),  # fmt: skip
                predict=True,
            )
        },
        "/v2/models/{model}/config": _get("Triton model configuration", "triton", [MODEL]),
        "/v2/models/{model}/versions/{version}/config": _get(
            "Triton version configuration", "triton", mv
        ),
        "/v2/models/stats": _get("Triton statistics of every model", "triton"),
        "/v2/models/{model}/stats": _get("Triton model statistics", "triton", [MODEL]),
        "/v2/models/{model}/versions/{version}/stats": _get(
            "Triton version statistics", "triton", mv
        ),
        "/v2/repository/index": {
            "post": _op(
                "Triton repository index (an empty body is allowed)",
                "triton",
                None,
                None,
                _answers("models", {"type": "array"}, "400"),
            )
            | {
                "requestBody": {
                    "required": False,
                    "content": _json_body(
                        {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                    ),
                }
            }
        },
        "/v2/repository/models/{model}/load": {
            "post": _op(
                "Triton load: re-read the model's route and answer once it serves",
                "triton",
                [MODEL],
                None,
                _answers("loaded", None, *admin_errors),
                admin=True,
            )
        },
        "/v2/repository/models/{model}/unload": {
            "post": _op(
                "Triton unload: 501 (the registry's route decides what is served)",
                "triton",
                [MODEL],
                None,
                {"403": {"description": ERRORS["403"]}, "501": {"description": "not served"}},
                admin=True,
            )
        },
        "/v1/models": _get("KServe V1 model list", "kserve-v1"),
        "/v1/models/{model}": _get("KServe V1 model status", "kserve-v1", [MODEL]),
        "/v1/models/{model}:predict": {"post": {**V1_PREDICT, "parameters": [MODEL]}},
        "/v1/models/{model}/versions/{version}:predict": {
            "post": {**V1_PREDICT, "parameters": mv}
        },
        "/invocations": {
            "post": _op(
                "MLflow scoring: dataframe_split, dataframe_records, instances or inputs; or CSV",
                "mlflow",
                [_param("model", "iris", where="query")],
                {**_json_body(_ref("MlflowRequest")), "text/csv": {"schema": {"type": "string"}}},
                _answers("predictions", _ref("V1Response"), "400", "401", "404", "413", "415"),
                predict=True,
            )
        },
        "/ping": _get("MLflow liveness", "mlflow"),
        "/health": _get("MLflow health: 200 once the models are loaded", "mlflow"),
        "/version": {
            "get": {
                "summary": "Gateway version",
                "tags": ["mlflow"],
                "responses": {
                    "200": {"description": "version", "content": {"text/plain": {"schema": {
                        "type": "string"}}}}  # fmt: skip
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "tags": ["metrics"],
                "responses": {
                    "200": {"description": "text format", "content": {"text/plain": {"schema": {
                        "type": "string"}}}}  # fmt: skip
                },
            }
        },
        "/openapi.json": _get("This document", "meta"),
        "/admin/models": {"get": _op("Served models", "admin", None, None,
                                     _answers("models", None, *admin_errors), admin=True)},
        "/admin/models/{model}": {"get": _op("One served model", "admin", [MODEL], None,
                                             _answers("model", None, *admin_errors), admin=True)},
        "/admin/reload": {"post": _op(
            "Reload every model, or one", "admin", [_param("model", "iris", where="query")],
            None, {"202": {"description": "reloading"}, "403": {"description": ERRORS["403"]},
                   "401": {"description": ERRORS["401"]}}, admin=True)},
        "/admin/models/{model}/route": {"put": _op(
            "Set the model's route (champion, canary, shadows)", "admin", [MODEL],
            _json_body(_ref("RouteChange")), _answers("the new route", None, *admin_errors),
            admin=True)},
        "/admin/settings": {"get": _op("The gateway's settings (tokens masked)", "admin", None,
                                       None, _answers("settings", None, "401", "403"),
                                       admin=True)},
    }  # fmt: skip
    window = _param("window_s", "300", where="query")
    window["schema"] = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WINDOW_S}
    status = _op("Rollout status (health of both sides)", "admin", [MODEL, window], None,
                 _answers("status", None, *admin_errors), admin=True)  # fmt: skip
    paths["/admin/models/{model}/rollout"] = {"get": status}
    paths["/admin/models/{model}/rollout/status"] = {"get": status}
    for action, schema in rollout_body.items():
        paths[f"/admin/models/{{model}}/rollout/{action}"] = {
            "post": _op(
                f"Rollout: {action}",
                "admin",
                [MODEL],
                _json_body(schema),
                _answers("the new route", None, *admin_errors),
                admin=True,
            )
        }
    return paths


def _schemas() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": DATATYPES},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    values = {"type": "array", "items": {}}
    return {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}}},
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": tensor},
                "outputs": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}}}},
            },
            "example": {"id": "r1", "inputs": [{"name": "input-0", "shape": [1, 4],
                        "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]},
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                           "id": {"type": "string"}, "outputs": {"type": "array",
                                                                 "items": tensor}},
        },
        "V1Request": {
            "type": "object",
            "properties": {"instances": values, "inputs": {}},
            "anyOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
            "example": {"instances": [[5.1, 3.5, 1.4, 0.2]]},
        },
        "V1Response": {"type": "object",
                       "properties": {"predictions": values, "outputs": {}}},
        "MlflowRequest": {
            "type": "object",
            "properties": {
                "dataframe_split": {"type": "object", "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": values}}},
                "dataframe_records": {"type": "array", "items": {"type": "object"}},
                "instances": values,
                "inputs": {},
            },
            "anyOf": [{"required": [key]} for key in
                      ("dataframe_split", "dataframe_records", "instances", "inputs")],
            "example": {"instances": [[5.1, 3.5, 1.4, 0.2]]},
        },
        "Feedback": {
            "type": "object",
            "required": ["labels"],
            "properties": {"labels": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["id", "label"],
                "properties": {"id": {"type": ["string", "integer"]},
                               "label": {"type": ["string", "number", "boolean"]}}}}},
            "example": {"labels": [{"id": "r1", "label": 0}]},
        },
        "FeedbackCounts": {
            "type": "object",
            "required": ["received", "accepted", "matched", "unmatched"],
            "properties": {name: {"type": "integer", "minimum": 0}
                           for name in ("received", "accepted", "matched", "unmatched")},
            "example": {"received": 2, "accepted": 2, "matched": 1, "unmatched": 1},
        },
        "RouteChange": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "champion": {"type": ["integer", "null"]},
                "canary": {"type": ["object", "null"]},
                "shadows": {"type": "array", "items": {"type": "object"}},
            },
        },
    }  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The whole document, as a JSON-ready dict."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlgate gateway",
            "version": str(getattr(gateway, "__version__", "0.1.0")),
            "description": "Open Inference Protocol (KServe V2) with Triton's extensions, "
            "KServe V1, MLflow scoring, feedback and the admin API. Errors are "
            '{"error": "..."} naming the field and the rule.',
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer"},
                "predictToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
