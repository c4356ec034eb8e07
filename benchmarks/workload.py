"""The reference serving workload shared by every HTTP benchmark.

``RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0)`` fitted on
``make_classification(100_000, 32, n_informative=16, n_redundant=4, random_state=0)`` as
float32 (see ``shared/BENCHMARKS.md``). Fitting takes about a minute on two cores, so the
fitted model is cached as a joblib file under ``benchmarks/.cache/`` (git-ignored), keyed by
the scikit-learn version that fitted it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
MODEL_NAME = "rf"
N_FEATURES = 32
N_SAMPLES = 100_000
INPUT_NAME = "input-0"


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """The reference training set: ``X`` float32 ``[100_000, 32]``, ``y`` int ``[100_000]``."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=N_SAMPLES,
        n_features=N_FEATURES,
        n_informative=16,
        n_redundant=4,
        random_state=0,
    )
    return X.astype(np.float32), y


def model_path(*, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the fitted reference model lives (joblib), fitting and caching it on first use."""
    import joblib
    import sklearn
    from sklearn.ensemble import RandomForestClassifier

    path = cache_dir / f"rf100-d12-sklearn{sklearn.__version__}.joblib"
    if path.exists():
        return path
    X, y = make_data()
    # n_jobs only changes how fast the trees are grown, not the trees (random_state is fixed);
    # the served model runs with n_jobs=None, as the peers did.
    model = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=2)
    model.fit(X, y)
    model.set_params(n_jobs=None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    joblib.dump(model, tmp)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return path


def load_model(*, cache_dir: Path = CACHE_DIR) -> RandomForestClassifier:
    """The fitted reference model (from the cache)."""
    import joblib

    model: RandomForestClassifier = joblib.load(model_path(cache_dir=cache_dir))
    return model


def request_rows(n: int, *, seed: int = 1) -> np.ndarray:
    """``n`` distinct float32 rows drawn from the training distribution, for request bodies.

    Distinct rows keep the branch predictor from memorising one path through the trees.
    """
    X, _ = make_data()
    rng = np.random.default_rng(seed)
    return X[rng.choice(X.shape[0], size=n, replace=False)]


def oip_body(rows: np.ndarray, *, name: str = INPUT_NAME) -> dict[str, Any]:
    """An Open Inference Protocol V2 request for a float32 ``[n, d]`` block of rows.

    >>> oip_body(np.zeros((1, 2), dtype=np.float32))["inputs"][0]["shape"]
    [1, 2]
    """
    if rows.ndim != 2:
        raise ValueError(f"rows: expected a 2-D array [n, d], got shape {list(rows.shape)}")
    return {
        "inputs": [
            {
                "name": name,
                "shape": [int(rows.shape[0]), int(rows.shape[1])],
                "datatype": "FP32",
                "data": [float(v) for v in rows.astype(np.float32).ravel()],
            }
        ]
    }


def oip_body_bytes(rows: np.ndarray, *, name: str = INPUT_NAME) -> bytes:
    """:func:`oip_body` encoded as compact JSON on one line."""
    return json.dumps(oip_body(rows, name=name), separators=(",", ":")).encode()


def proba_from_oip(response: dict[str, Any], *, n_rows: int) -> np.ndarray:
    """The ``predict_proba`` output of an OIP response as a float64 ``[n_rows, k]`` array.

    Takes the output named ``predict_proba``; a server that names it otherwise (or returns a
    single output) is read from its only 2-D output.
    """
    outputs = response.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise ValueError(f"response: expected a non-empty 'outputs' list, got {response!r:.200}")
    chosen = next((o for o in outputs if o.get("name") == "predict_proba"), None)
    if chosen is None:
        two_d = [o for o in outputs if len(o.get("shape", [])) == 2]
        if len(two_d) != 1:
            names = [o.get("name") for o in outputs]
            raise ValueError(f"response: no 'predict_proba' output among {names}")
        chosen = two_d[0]
    data = np.asarray(chosen["data"], dtype=np.float64)
    return data.reshape(n_rows, -1)
