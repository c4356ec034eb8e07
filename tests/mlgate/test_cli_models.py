"""``mlgate models`` and ``mlgate demo``: output, JSON, and one-line errors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from mlgate.cli import app
from registry import Registry

runner = CliRunner()
rng = np.random.default_rng(3)
FRAME = pl.DataFrame({"age": rng.normal(40, 9, 40), "tenure": rng.normal(5, 2, 40)})
TARGET = (FRAME["age"].to_numpy() > 40).astype(int)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    model = LogisticRegression().fit(FRAME, TARGET)
    sio.dump(model, folder / "model.skops")
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    FRAME.write_csv(folder / "ref.csv")
    FRAME.drop("tenure").write_parquet(folder / "short.parquet")
    (folder / "notes.txt").write_text("not a model")
    return {p.stem + p.suffix: p for p in folder.iterdir()}


def mlgate(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_register_list_show(files: dict[str, Path], local_registry_url: str) -> None:
    reg = ["--registry", local_registry_url]
    code, out, _ = mlgate("models", "register", "churn", files["model.skops"],
                          "--reference", files["ref.csv"], "--tag", "team=risk", *reg)  # fmt: skip
    assert code == 0 and "registered churn version 1" in out and "champion" in out
    code, out, _ = mlgate("models", "register", "churn", files["model.skops"], *reg,
                          "--format", "json")  # fmt: skip
    manifest = json.loads(out)
    assert code == 0 and manifest["version"] == 2 and manifest["name"] == "churn"
    assert [f["name"] for f in manifest["input_schema"]["features"]] == ["age", "tenure"]
    code, out, _ = mlgate("models", "list", *reg)
    assert code == 0 and "churn" in out
    code, out, _ = mlgate("models", "list", *reg, "--format", "json")
    assert json.loads(out) == [
        {"name": "churn", "versions": 2, "latest": 2, "champion": 1, "canary": None,
         "shadows": [], "flavor": "sklearn", "updated_at": json.loads(out)[0]["updated_at"]}
    ]  # fmt: skip
    code, out, _ = mlgate("models", "show", "churn", *reg)
    assert code == 0 and "champion v1" in out
    code, out, _ = mlgate("models", "show", "churn", "1", *reg)
    assert code == 0 and "team=risk" in out and "tenure" in out and "40 rows" in out
    code, out, _ = mlgate("models", "show", "churn", "latest", *reg, "--format", "json")
    assert code == 0 and json.loads(out)["version"] == 2
    code, out, _ = mlgate("models", "register", "churn", files["model.skops"], "--promote", *reg)
    assert code == 0 and "version 3" in out
    assert Registry(local_registry_url).route("churn").champion == 3


def test_registry_defaults_to_home(files: dict[str, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("MLGATE_REGISTRY", raising=False)
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "home"))
    code, _, _ = mlgate("models", "register", "m", files["model.skops"])
    assert code == 0
    assert Registry(str(tmp_path / "home" / "registry")).list() == ["m"]
    code, out, _ = mlgate("models", "list", "--home", str(tmp_path / "other"))
    assert code == 0 and "no models in" in out


def test_empty_list_json(local_registry_url: str) -> None:
    assert mlgate("models", "list", "--registry", local_registry_url, "--format", "json")[1:2] == (
        "[]\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "ghost"], "model 'ghost' is not registered"),
        (["show", "churn", "7"], "model 'churn' has no version 7"),
        (["register", "churn", "{notes.txt}"], "not a model file"),
        (["register", "churn", "{model.pkl}"], "--trust-pickle"),
        (["register", "Bad/Name", "{model.skops}"], "^[a-z0-9][a-z0-9._-]{0,63}$"),
        (["register", "churn", "{model.skops}", "--reference", "{short.parquet}"],
         "lacks the model's feature column(s) ['tenure']"),
        (["register", "churn", "{model.skops}", "--tag", "oops"], "expected KEY=VALUE"),
        (["register", "churn", "{model.skops}", "--flavor", "tf"], "expected 'sklearn' or 'onnx'"),
    ],
)  # fmt: skip
def test_errors_are_one_line(
    files: dict[str, Path], local_registry_url: str, args: list[str], message: str
) -> None:
    Registry(local_registry_url).register("churn", files["model.skops"])
    filled = [str(files[a[1:-1]]) if a.startswith("{") and a.endswith("}") else a for a in args]
    code, out, err = mlgate("models", *filled, "--registry", local_registry_url)
    assert code == 1
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err + out


def test_corrupt_artifact_is_reported(files: dict[str, Path], local_registry_url: str) -> None:
    reg = Registry(local_registry_url)
    mv = reg.register("churn", files["model.skops"])
    reg.store.write("models/churn/versions/1/model.skops", b"tampered")
    code, _, err = mlgate("models", "show", "churn", "1", "--registry", local_registry_url)
    assert code == 1 and "sha256 mismatch" in err and mv.sha256 in "".join(err.split())


def test_trusted_pickle(files: dict[str, Path], local_registry_url: str) -> None:
    code, out, _ = mlgate("models", "register", "churn", files["model.pkl"], "--trust-pickle",
                          "--registry", local_registry_url, "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["artifact"] == "model.skops"


@pytest.mark.slow
def test_real_cli_process_on_s3(
    files: dict[str, Path], s3_registry_url: str, local_registry_url: str
) -> None:
    exe = Path(sys.executable).parent / "mlgate"
    env = {**os.environ, "MLGATE_REGISTRY": s3_registry_url}
    done = subprocess.run(
        [str(exe), "models", "register", "churn", str(files["model.skops"]), "--format", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    bad = subprocess.run([str(exe), "models", "show", "nope", "--registry", local_registry_url],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "'nope' is not registered" in bad.stderr
    assert Registry(s3_registry_url).list() == ["churn"]


def scale(values: np.ndarray) -> np.ndarray:
    """A user function a FunctionTransformer calls: outside the allowlist until trusted."""
    return values / 10.0


def test_trust_type_admits_a_reviewed_function(tmp_path: Path, local_registry_url: str) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(scale), LogisticRegression()).fit(FRAME, TARGET)
    path = tmp_path / "custom.skops"
    sio.dump(model, path)
    name = f"{scale.__module__}.scale"
    code, _, err = mlgate("models", "register", "churn", path, "--registry", local_registry_url)
    assert code == 1 and name in " ".join(err.split()) and "--trust-type" in err
    code, out, _ = mlgate("models", "register", "churn", path, "--trust-type", name,
                          "--registry", local_registry_url, "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["trusted_types"] == [name]


def test_register_fills_this_machines_runtime_cache(
    files: dict[str, Path], local_registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next ``mlgate serve`` loads the compiled arrays instead of the artifact."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)  # no mlgate.toml here
    code, out, _ = mlgate("models", "register", "churn", files["model.skops"],
                          "--registry", local_registry_url, "--format", "json")  # fmt: skip
    assert code == 0
    sha = json.loads(out)["sha256"]
    entries = list((tmp_path / "xdg" / "mlgate" / "runtimes").iterdir())
    assert [p.name.split("-")[0] for p in entries] == [sha]
    cache = tmp_path / "xdg" / "mlgate" / "runtimes"
    # an onnx version is served by onnxruntime: nothing to save
    code, _, _ = mlgate("models", "register", "other", files["model.skops"], "--flavor", "onnx",
                        "--registry", local_registry_url)  # fmt: skip
    assert code == 0 and len(list(cache.iterdir())) == 1
    # a cache turned off in mlgate.toml: nothing either
    sio.dump(LogisticRegression(C=0.5).fit(FRAME, TARGET), tmp_path / "m2.skops")
    (tmp_path / "mlgate.toml").write_text('[gateway]\nruntime_cache_dir = ""\n')
    code, _, _ = mlgate("models", "register", "churn", tmp_path / "m2.skops",
                        "--registry", local_registry_url)  # fmt: skip
    assert code == 0 and len(list(cache.iterdir())) == 1
    (tmp_path / "mlgate.toml").unlink()
    code, _, _ = mlgate("models", "register", "churn", tmp_path / "m2.skops",
                        "--registry", local_registry_url)  # fmt: skip
    assert code == 0 and len(list(cache.iterdir())) == 2
