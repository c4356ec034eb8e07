"""``load_runtime``: from a registered version to a compiled ``Runtime``.

The one place where the gateway reads a model's artifact out of the registry: the artifact
(an estimator, or ONNX bytes) is loaded here and handed to ``gateway.runtimes.compile_model``,
which never sees the registry.

A version compiled by the numba backend is also saved, as arrays, under the artifact's sha256
(``SavedRuntimes`` of ``gateway.runtimes.numba.saved``): the next process that serves it loads
those arrays instead of the artifact, without importing scikit-learn and skops or running
skops' audited loader (~1.7 s of a worker's start on the reference forest). ``mlgate models
register`` saves it too, so even the first ``mlgate serve`` after a registration on that
machine starts from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.runtimes import UnsupportedModel, compile_model

if TYPE_CHECKING:
    from gateway.runtimes import Runtime
    from gateway.runtimes.numba.saved import SavedRuntimes
    from registry import ModelVersion, Registry


def load_runtime(
    registry: Registry,
    model_version: ModelVersion,
    *,
    backend: str = "auto",
    fallback: bool = True,
    onnx_threads: int = 1,
    parallel_rows: int | None = None,
    saved: SavedRuntimes | None = None,
) -> Runtime:
    """The runtime for a registered ``ModelVersion``.

    ``backend="auto"``: ``onnx`` flavor -> onnx; ``sklearn`` flavor -> numba, falling back to
    sklearn with a logged warning when numba cannot compile it (``fallback=False``: raise
    ``UnsupportedModel``). An explicit backend is used as asked (``onnx`` on an sklearn
    flavor exports it first). ``saved``: where numba runtimes are loaded from and saved to
    (None: always compiled from the artifact; see the module docstring).
    """
    flavor = str(model_version.flavor)
    if backend == "auto":
        backend = "onnx" if flavor == "onnx" else "numba"
    if saved is not None and backend == "numba" and flavor != "onnx":
        runtime = saved.load(model_version.sha256, parallel_rows=parallel_rows)
        if runtime is not None:
            return runtime
    model = registry.load_model(model_version)
    classes = model_version.output_schema.classes
    if backend == "onnx":
        return _onnx_runtime(model, classes, onnx_threads)
    if flavor == "onnx":
        raise UnsupportedModel(
            model_version,
            backend=backend,
            reason="the registered artifact is ONNX",
            supported=("backend='onnx' or 'auto' for onnx flavor",),
        )
    if backend == "numba":
        options = {} if parallel_rows is None else {"parallel_rows": parallel_rows}
        compiled = compile_model(model, "numba", fallback=fallback, **options)
        from gateway.runtimes.numba.runtime import NumbaRuntime

        if saved is not None and isinstance(compiled, NumbaRuntime):  # not the sklearn fallback
            saved.save(model_version.sha256, compiled)
        return compiled
    return compile_model(model, backend)


def _onnx_runtime(model: Any, classes: Any, threads: int) -> Runtime:
    """ONNX bytes as stored, or an ``sklearn`` flavor's estimator (``compile_model`` exports
    it with the same skl2onnx export that registration uses)."""
    options: dict[str, Any] = {"threads": threads}
    if classes:
        options["classes"] = np.asarray(classes)
    return compile_model(model, "onnx", fallback=False, **options)
