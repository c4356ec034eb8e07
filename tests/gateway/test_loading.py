"""gateway.loading.load_runtime: from a registered ModelVersion to the right backend."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier

from gateway.loading import load_runtime
from gateway.runtimes import UnsupportedModel
from gateway.runtimes.numba.saved import SavedRuntimes
from gateway.settings import GatewaySettings
from registry import Registry


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(200, 4, n_informative=3, n_redundant=0, random_state=0)
    return X.astype(np.float32), y


def test_sklearn_flavor_compiles_with_numba(tmp_path: Path, data) -> None:
    reg = Registry(str(tmp_path))
    model = RandomForestClassifier(5, max_depth=4, random_state=0).fit(*data)
    mv = reg.register("forest", model)
    rt = load_runtime(reg, mv)
    assert rt.backend == "numba"
    np.testing.assert_array_equal(
        rt.predict(data[0])["predict_proba"], model.predict_proba(data[0])
    )


def test_onnx_flavor_runs_on_onnxruntime(tmp_path: Path, data) -> None:
    reg = Registry(str(tmp_path))
    model = RandomForestClassifier(5, max_depth=4, random_state=0).fit(*data)
    mv = reg.register("forest", model, flavor="onnx")
    rt = load_runtime(reg, mv, onnx_threads=2)
    assert rt.backend == "onnx"
    np.testing.assert_array_equal(rt.predict(data[0])["predict"], model.predict(data[0]))
    with pytest.raises(UnsupportedModel, match="ONNX"):
        load_runtime(reg, mv, backend="numba")


def test_uncompilable_model_falls_back_or_raises(tmp_path: Path, data, caplog) -> None:
    reg = Registry(str(tmp_path))
    mv = reg.register("knn", KNeighborsClassifier().fit(*data))
    with caplog.at_level(logging.WARNING, logger="gateway.runtimes.factory"):
        assert load_runtime(reg, mv).backend == "sklearn"
    assert "KNeighborsClassifier" in caplog.text
    with pytest.raises(UnsupportedModel):
        load_runtime(reg, mv, fallback=False)
    assert load_runtime(reg, mv, backend="sklearn").backend == "sklearn"


# -- the runtime cache (gateway.loading, gateway.runtimes.numba.saved) ---------------------------
def _saved(directory: Path, max_bytes: int = 1 << 30) -> SavedRuntimes:
    return SavedRuntimes(str(directory), max_bytes=max_bytes)


def _registered_forest(tmp_path: Path, data) -> tuple[Registry, RandomForestClassifier, Any]:
    reg = Registry(str(tmp_path / "reg"))
    model = RandomForestClassifier(5, max_depth=4, random_state=0).fit(*data)
    return reg, model, reg.register("forest", model)


def _refuse_artifact(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the artifact was read: the cache was not used")

    monkeypatch.setattr(reg, "load_model", refuse)


def test_numba_runtime_is_saved_and_served_from_the_cache(
    tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, model, mv = _registered_forest(tmp_path, data)
    cache = tmp_path / "cache"
    first = load_runtime(reg, mv, saved=_saved(cache))
    (saved,) = cache.iterdir()
    assert saved.name.startswith(mv.sha256) and saved.suffix == ".npz"
    _refuse_artifact(reg, monkeypatch)
    again = load_runtime(reg, mv, saved=_saved(cache), parallel_rows=64)
    assert again.backend == "numba" and again.kernel.parallel_rows == 64
    np.testing.assert_array_equal(
        again.predict(data[0])["predict_proba"], first.predict(data[0])["predict_proba"]
    )
    # another version of other bytes is not served from this one's entry
    other = reg.register("forest", RandomForestClassifier(3, random_state=1).fit(*data))
    with pytest.raises(AssertionError, match="cache was not used"):
        load_runtime(reg, other, saved=_saved(cache))
    # an explicit sklearn backend never looks at it
    monkeypatch.undo()
    assert load_runtime(reg, mv, backend="sklearn", saved=_saved(cache)).backend == "sklearn"


def test_a_broken_cache_entry_is_compiled_again_and_replaced(
    tmp_path: Path, data, caplog: pytest.LogCaptureFixture
) -> None:
    reg, model, mv = _registered_forest(tmp_path, data)
    cache = tmp_path / "cache"
    load_runtime(reg, mv, saved=_saved(cache))
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:1000])  # torn
    with caplog.at_level(logging.WARNING, logger="gateway.loading"):
        rt = load_runtime(reg, mv, saved=_saved(cache))
    assert "compiling the artifact again" in caplog.text
    np.testing.assert_array_equal(
        rt.predict(data[0])["predict_proba"], model.predict_proba(data[0])
    )
    assert len(entry.read_bytes()) > 1000  # replaced by a whole one
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temporary file left
    # an entry of another kernel code version is dropped when this one is saved
    stale = cache / f"{mv.sha256}-0000000000000000.npz"
    stale.write_bytes(entry.read_bytes())
    entry.unlink()
    load_runtime(reg, mv, saved=_saved(cache))
    assert [p.name for p in cache.iterdir()] == [entry.name]


def test_an_unwritable_cache_only_costs_the_speed_up(
    tmp_path: Path, data, caplog: pytest.LogCaptureFixture
) -> None:
    reg, model, mv = _registered_forest(tmp_path, data)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="gateway.loading"):
        rt = load_runtime(reg, mv, saved=_saved(blocker / "cache"))
    assert rt.backend == "numba" and "cannot save" in caplog.text
    # an estimator numba cannot compile is served by sklearn and never saved
    knn = reg.register("knn", KNeighborsClassifier().fit(*data))
    assert load_runtime(reg, knn, saved=_saved(tmp_path / "c2")).backend == "sklearn"
    assert not (tmp_path / "c2").exists()


def test_a_fresh_process_serves_from_the_cache_without_scikit_learn(tmp_path: Path, data) -> None:
    reg, model, mv = _registered_forest(tmp_path, data)
    cache = tmp_path / "cache"
    load_runtime(reg, mv, saved=_saved(cache))
    np.save(tmp_path / "X.npy", data[0])
    np.save(tmp_path / "want.npy", model.predict_proba(data[0]))
    probe = f"""
import sys
import numpy as np
from gateway.loading import load_runtime
from gateway.runtimes.numba.saved import SavedRuntimes
from registry import Registry
reg = Registry({str(tmp_path / "reg")!r})
rt = load_runtime(reg, reg.get("forest", 1), saved=SavedRuntimes({str(cache)!r}, max_bytes=1 << 30))
got = rt.predict(np.load({str(tmp_path / "X.npy")!r}))["predict_proba"]
assert np.array_equal(got, np.load({str(tmp_path / "want.npy")!r}))
print(sorted(m for m in ("sklearn", "skops") if m in sys.modules))
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_settings_resolve_the_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    def directory(settings: GatewaySettings) -> str | None:
        saved = settings.saved_runtimes()
        return None if saved is None else str(saved.directory)

    monkeypatch.setenv("XDG_CACHE_HOME", "/var/cache/me")
    assert directory(GatewaySettings()) == "/var/cache/me/mlgate/runtimes"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert directory(GatewaySettings()) == os.path.expanduser("~/.cache/mlgate/runtimes")
    assert directory(GatewaySettings(runtime_cache_dir="")) is None
    assert directory(GatewaySettings(runtime_cache_dir="~/rt")) == os.path.expanduser("~/rt")
    saved = GatewaySettings(runtime_cache_max_bytes=123).saved_runtimes()
    assert saved is not None and saved.max_bytes == 123


def test_the_cache_keeps_the_most_recently_used_runtimes_under_its_size(
    tmp_path: Path, data
) -> None:
    reg = Registry(str(tmp_path / "reg"))
    versions = [
        reg.register("forest", RandomForestClassifier(5, max_depth=4, random_state=s).fit(*data))
        for s in range(3)
    ]
    cache = tmp_path / "cache"
    load_runtime(reg, versions[0], saved=_saved(cache))
    (first,) = cache.iterdir()
    size = first.stat().st_size
    load_runtime(reg, versions[1], saved=_saved(cache, int(2.5 * size)))
    os.utime(first, (1, 1))  # saved long ago...
    # ...but used again now (a hit touches its entry): version 1 is the least recently used
    load_runtime(reg, versions[0], saved=_saved(cache, int(2.5 * size)))
    assert first.stat().st_mtime > 1
    load_runtime(reg, versions[2], saved=_saved(cache, int(2.5 * size)))
    kept = sorted(p.name.split("-")[0] for p in cache.iterdir())
    assert kept == sorted([versions[0].sha256, versions[2].sha256])
    # an entry larger than the limit by itself is still kept (the one just saved)
    load_runtime(reg, versions[1], saved=_saved(cache, 1))
    assert [p.name.split("-")[0] for p in cache.iterdir()] == [versions[1].sha256]
