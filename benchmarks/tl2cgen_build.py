"""treelite + tl2cgen compiled C for the tree models, built once and cached as a shared library.

gcc on the 100-tree depth-12 forest takes minutes (about 10 on this 2-core machine), so a
library is only built when asked (``build=True``) and reused from ``benchmarks/.cache/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.bench_models import CACHE, TREE_MODELS, BenchModel

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


def _library_path(bench: BenchModel) -> Any:
    # pickle bytes of a fitted forest differ between processes: hash the trees themselves
    digest = hashlib.sha256()
    model = bench.model
    if hasattr(model, "_predictors"):
        arrays = [p.nodes for iteration in model._predictors for p in iteration]
    else:
        trees = [e.tree_ for e in np.ravel(model.estimators_)]
        arrays = [a for t in trees for a in (t.feature, t.threshold, t.value)]
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return CACHE / f"tl2cgen-{bench.name}-{digest.hexdigest()[:16]}.so"


def tl2cgen_predict(bench: BenchModel, *, build: bool) -> tuple[Predict | None, str]:
    """A predict function over the compiled library, or None and the reason."""
    if bench.name not in TREE_MODELS:
        return None, "not a tree model"
    try:
        import tl2cgen
        import treelite
    except ImportError:
        return None, "treelite/tl2cgen not installed"
    path = _library_path(bench)
    if not path.exists():
        if not build:
            return None, f"library not built (run with --build-tl2cgen; cache: {path.name})"
        model = treelite.sklearn.import_model(bench.model)
        tmp = path.with_suffix(".tmp.so")
        tl2cgen.export_lib(
            model, toolchain="gcc", libpath=tmp, params={"parallel_comp": 8}, nthread=2
        )
        tmp.replace(path)
    predictor = tl2cgen.Predictor(str(path), nthread=1)
    model = bench.model
    classes = getattr(model, "classes_", None)

    def predict(X: np.ndarray) -> dict[str, np.ndarray]:
        out = np.asarray(predictor.predict(tl2cgen.DMatrix(X, dtype="float32")))
        out = out.reshape(X.shape[0], -1).astype(np.float64)
        if classes is None:
            return {"predict": out[:, 0]}
        if out.shape[1] == 1:  # binary models report the positive class only
            out = np.hstack([1.0 - out, out])
        return {"predict": classes[out.argmax(axis=1)], "predict_proba": out}

    return predict, ""
