"""Malicious skops files are refused by name, at registration and at load, with no side effect.

Each payload is a real skops file built the way an attacker would: a scikit-learn pipeline
whose ``FunctionTransformer`` (trusted as a class) calls a dangerous function when it
predicts, or holds an object of a dangerous class. mlgate's policy (``registry.trust``) is an
allowlist of exact type names, so every one must be refused naming the type, before any object
of the file is built: the file the payload would write never appears.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import importlib
import io
import operator
import os
import pathlib
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import sklearn.datasets
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from registry import Registry, UntrustedTypes

X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int)


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__name__}"


def double(values: Any) -> Any:
    """A harmless user function, trusted explicitly in one test."""
    return values * 2


# (id, the callable a FunctionTransformer calls at predict time, its keyword arguments)
# ``{out}`` in a keyword value is replaced by the path the payload must never write.
CALLABLE_PAYLOADS: list[tuple[str, Any, dict[str, Any]]] = [
    (
        "dump_svmlight_file",
        sklearn.datasets.dump_svmlight_file,
        {"y": [0] * 8, "f": "{out}", "zero_based": True},
    ),
    ("load_svmlight_file", sklearn.datasets.load_svmlight_file, {}),
    ("np.load", np.load, {"allow_pickle": True}),
    ("np.save", np.save, {"file": "{out}"}),
    ("np.savetxt", np.savetxt, {"fname": "{out}"}),
    ("np.genfromtxt", np.genfromtxt, {}),
    ("np.fromregex", np.fromregex, {"regexp": ".*", "dtype": "f8"}),
    ("np.loadtxt", np.loadtxt, {}),
    ("np.fromfile", np.fromfile, {}),
    ("eval", builtins.eval, {}),
    ("exec", builtins.exec, {}),
    ("getattr", builtins.getattr, {"name": "tofile"}),
    ("open", builtins.open, {"file": "{out}", "mode": "w"}),
    ("__import__", builtins.__import__, {}),
    ("os.system", os.system, {}),
    ("os.remove", os.remove, {}),
    ("subprocess.check_output", subprocess.check_output, {}),
    ("shutil.rmtree", shutil.rmtree, {}),
    ("pickle.loads", pickle.loads, {}),
    ("importlib.import_module", importlib.import_module, {}),
]
# objects of dangerous classes carried inside a fitted pipeline
OBJECT_PAYLOADS: list[tuple[str, Any, str]] = [
    ("operator.attrgetter", operator.attrgetter("__class__.__init__.__globals__"),
     "operator.attrgetter"),
    ("operator.methodcaller", operator.methodcaller("system", "touch /tmp/pwned"),
     "operator.methodcaller"),
    ("partial(os.system)", functools.partial(os.system, "touch /tmp/pwned"), _qualified(os.system)),
    ("subprocess.Popen", subprocess.Popen, "subprocess.Popen"),
    ("io.FileIO", io.FileIO, "_io.FileIO"),
    ("pathlib.PurePosixPath", pathlib.PurePosixPath("/etc/passwd"), "pathlib.PurePosixPath"),
]  # fmt: skip


def _write(tmp_path: Path, obj: Any) -> Path:
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(obj))
    return path


def _callable_model(func: Any, kw_args: dict[str, Any], out: Path) -> Any:
    kwargs = {k: (str(out) if v == "{out}" else v) for k, v in kw_args.items()}
    step = FunctionTransformer(func=func, kw_args=kwargs or None, validate=False)
    model = make_pipeline(step, LogisticRegression())
    # fit the classifier alone: fitting the pipeline would run the payload here, in the test
    model.steps[-1][1].fit(X, Y)
    step.fit(X)
    return model


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry((tmp_path / "registry").as_uri())


def test_at_least_twenty_payloads() -> None:
    assert len(CALLABLE_PAYLOADS) + len(OBJECT_PAYLOADS) >= 20


@pytest.mark.parametrize(
    ("func", "kw_args"), [p[1:] for p in CALLABLE_PAYLOADS], ids=[p[0] for p in CALLABLE_PAYLOADS]
)
def test_a_dangerous_callable_is_refused_by_name(
    reg: Registry, tmp_path: Path, func: Any, kw_args: dict[str, Any]
) -> None:
    out = tmp_path / "written-by-payload"
    path = _write(tmp_path, _callable_model(func, kw_args, out))
    with pytest.raises(UntrustedTypes) as info:
        reg.register("m", path, reference=X)
    refused = sio.get_untrusted_types(data=path.read_bytes())
    assert any(name in str(info.value) for name in refused if "." in name)
    assert _qualified(func).split(".")[-1] in str(info.value)
    assert not out.exists()
    assert reg.list() == []


@pytest.mark.parametrize(
    ("obj", "name"), [p[1:] for p in OBJECT_PAYLOADS], ids=[p[0] for p in OBJECT_PAYLOADS]
)
def test_a_dangerous_object_is_refused_by_name(
    reg: Registry, tmp_path: Path, obj: Any, name: str
) -> None:
    model = make_pipeline(FunctionTransformer(validate=False), LogisticRegression())
    model.fit(X, Y)
    model.steps[0][1].kw_args = {"payload": obj}
    try:
        path = _write(tmp_path, model)
    except Exception as exc:  # noqa: BLE001 - skops cannot even write some objects
        pytest.skip(f"skops cannot serialize {name}: {exc}")
    with pytest.raises(UntrustedTypes, match=name.replace(".", r"\.")):
        reg.register("m", path)
    assert reg.list() == []


def test_an_in_memory_estimator_is_checked_before_it_runs(reg: Registry, tmp_path: Path) -> None:
    out = tmp_path / "written-by-payload"
    model = _callable_model(sklearn.datasets.dump_svmlight_file, {"y": [0] * 8, "f": "{out}"}, out)
    with pytest.raises(UntrustedTypes, match="dump_svmlight_file"):
        reg.register("m", model, reference=X)  # the reference would be scored: never reached
    assert not out.exists()


def test_a_tampered_stored_artifact_is_refused_at_load(reg: Registry, tmp_path: Path) -> None:
    """An attacker with write access to the store swaps the artifact and fixes the hash:
    the loader still refuses the types, so the gateway never builds the payload."""
    mv = reg.register("m", LogisticRegression().fit(X, Y))
    out = tmp_path / "written-by-payload"
    evil = sio.dumps(
        _callable_model(sklearn.datasets.dump_svmlight_file, {"y": [0] * 8, "f": "{out}"}, out)
    )
    version_dir = Path(reg.url.removeprefix("file://")) / "models" / "m" / "versions" / "1"
    (version_dir / mv.artifact).write_bytes(evil)
    manifest = msgspec.json.decode((version_dir / "manifest.json").read_bytes())
    manifest["sha256"] = hashlib.sha256(evil).hexdigest()
    (version_dir / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    with pytest.raises(UntrustedTypes, match="dump_svmlight_file"):
        reg.load_model(reg.get("m", 1))
    assert not out.exists()


def test_a_reviewed_type_is_trusted_by_name_for_that_version(reg: Registry, tmp_path: Path) -> None:
    model = make_pipeline(FunctionTransformer(func=double), LogisticRegression()).fit(X, Y)
    path = _write(tmp_path, model)
    with pytest.raises(UntrustedTypes, match="double"):
        reg.register("m", path)
    name = _qualified(double)
    mv = reg.register("m", path, trusted_types=[name])
    assert mv.trusted_types == [name]
    loaded = reg.load_model(reg.get("m", mv.version))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))  # type: ignore[attr-defined]
    # the trust is the version's: another version of the same file must name it again
    with pytest.raises(UntrustedTypes):
        reg.register("m", path)
