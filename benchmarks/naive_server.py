"""A naive model server: what most people write first, as a benchmark baseline.

Litestar on uvicorn (uvloop), one process, an ``async`` handler that decodes the Open Inference
Protocol body and calls the model on the event loop for every request: no batching, no queue,
no worker threads. ``--runtime sklearn`` calls scikit-learn's ``predict_proba``;
``--runtime numba`` calls mlgate's compiled runtime
(``gateway.runtimes.compile_model(model, backend="numba")``) instead, still without batching.

    python -m benchmarks.naive_server --port 8001 --model MODEL.joblib [--runtime numba]

(the reference model's file: ``benchmarks.workload.model_path()``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import numpy as np
from litestar import Litestar, get, post
from litestar.exceptions import NotFoundException, ValidationException

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

RUNTIMES = ("sklearn", "numba")


class RuntimeUnavailable(RuntimeError):
    """The compiled runtime asked for is not importable (yet)."""


def make_predict(model: Any, *, runtime: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``float32 [n, d] -> float64 [n, k]`` probabilities for ``runtime``."""
    if runtime == "sklearn":
        return model.predict_proba  # type: ignore[no-any-return]
    if runtime == "numba":
        try:
            from gateway.runtimes import compile_model
        except ImportError as exc:
            raise RuntimeUnavailable(
                "naive_server --runtime numba needs gateway.runtimes.compile_model, which is "
                f"not importable in this tree yet ({exc})"
            ) from exc
        compiled = compile_model(model, backend="numba")

        def predict(X: np.ndarray) -> np.ndarray:
            return compiled.predict(X)["predict_proba"]

        return predict
    raise ValueError(f"runtime: expected one of {list(RUNTIMES)}, got {runtime!r}")


def _rows(body: dict[str, Any], *, n_features: int) -> np.ndarray:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ValidationException("inputs: expected a list with one tensor")
    tensor = inputs[0]
    try:
        rows = np.asarray(tensor["data"], dtype=np.float32).reshape(-1, n_features)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationException(
            f"inputs[0]: expected FP32 data of shape [n, {n_features}], got {exc}"
        ) from exc
    return rows


def build_app(
    predict: Callable[[np.ndarray], np.ndarray], *, model_name: str, n_features: int
) -> Litestar:
    """The Litestar app: OIP health, readiness and ``POST /v2/models/{model}/infer``."""

    @get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @post("/v2/models/{model:str}/infer", status_code=200)
    async def infer(model: str, data: dict[str, Any]) -> dict[str, Any]:
        if model != model_name:
            raise NotFoundException(f"model: expected {model_name!r}, got {model!r}")
        rows = _rows(data, n_features=n_features)
        proba = predict(rows)  # on the event loop, like the naive servers we compare with
        return {
            "model_name": model_name,
            "id": data.get("id", ""),
            "outputs": [
                {
                    "name": "predict_proba",
                    "shape": list(proba.shape),
                    "datatype": "FP64",
                    "data": proba.ravel().tolist(),
                }
            ],
        }

    return Litestar(route_handlers=[live, ready, infer], debug=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model", required=True, help="joblib file of a fitted classifier")
    parser.add_argument("--model-name", default="rf")
    parser.add_argument("--runtime", choices=RUNTIMES, default="sklearn")
    args = parser.parse_args(argv)

    import joblib
    import uvicorn

    model = joblib.load(args.model)
    try:
        predict = make_predict(model, runtime=args.runtime)
    except RuntimeUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    n_features = int(model.n_features_in_)
    predict(np.zeros((1, n_features), dtype=np.float32))  # warm up (compiles, fills caches)
    app = build_app(predict, model_name=args.model_name, n_features=n_features)
    uvicorn.run(
        app, host=args.host, port=args.port, loop="uvloop", log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
