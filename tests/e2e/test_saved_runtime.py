"""A registration on this machine, then ``mlgate serve``: the worker serves the version from
the runtime that registration saved (``gateway.loading``), without importing scikit-learn,
and answers what scikit-learn answers. Real processes: the CLI, the server, its worker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from tests.e2e.processes import CLI, child_env
from tests.gateway.mlgate_process import mlgate_serve

pytestmark = pytest.mark.slow


def _sklearn_loaded(pid: int) -> bool:
    """Whether the process has mapped one of scikit-learn's compiled extensions."""
    return "/sklearn/" in Path(f"/proc/{pid}/maps").read_text()


def _register(root: Path, model_file: Path) -> None:
    done = subprocess.run(
        [*CLI, "models", "register", "forest", str(model_file),
         "--registry", str(root / "registry")],
        cwd=root, env=child_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _predict(url: str, X: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32",
                        "data": X.ravel().tolist()}],
            "outputs": [{"name": "predict_proba"}]}  # fmt: skip
    answer = httpx.post(f"{url}/v2/models/forest/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    (out,) = answer.json()["outputs"]
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


@pytest.mark.parametrize("cache", ["on", "off"])
def test_serve_after_register_starts_from_the_saved_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    X, y = make_classification(300, 8, n_informative=5, random_state=0)
    X = X.astype(np.float32)
    model = RandomForestClassifier(20, max_depth=6, random_state=0).fit(X, y)
    sio.dump(model, tmp_path / "forest.skops")
    config = "" if cache == "on" else '[gateway]\nruntime_cache_dir = ""\n'
    (tmp_path / "mlgate.toml").write_text(config)
    _register(tmp_path, tmp_path / "forest.skops")
    saved = list((tmp_path / "xdg" / "mlgate" / "runtimes").glob("*.npz"))
    assert len(saved) == (1 if cache == "on" else 0)
    with mlgate_serve(tmp_path, config) as served:
        got = _predict(served.http_url, X[:50])
        np.testing.assert_array_equal(got, model.predict_proba(X[:50]))
        (worker,) = served.workers()
        # the control: with the cache off the worker loads the artifact through scikit-learn
        assert _sklearn_loaded(worker) is (cache == "off")
    assert os.path.isdir(tmp_path / "xdg") is (cache == "on")
