"""Seldon MLServer 1.7.1 as a benchmark peer, in its own virtual environment.

``benchmarks/.venv-mlserver`` (git-ignored) gets ``mlserver==1.7.1 mlserver-sklearn==1.7.1
uvloop==0.21.0`` (with uvloop 0.23 MLServer's parallel worker dies at start: "There is no
current event loop") plus the scikit-learn version that pickled the model, so the joblib file
loads without a version mismatch. The model folder holds the joblib file and a
``model-settings.json`` with adaptive batching (``max_batch_size`` 32, ``max_batch_time``
2 ms, default ``parallel_workers``); the server folder a ``settings.json`` on free ports.

    python -m benchmarks.mlserver_peer install
    python -m benchmarks.mlserver_peer serve --port 8080     # foreground, Ctrl-C to stop
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.proc import ServerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Sequence

BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR / ".venv-mlserver"
PINS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")


def _sklearn_pin() -> str:
    import sklearn

    return f"scikit-learn=={sklearn.__version__}"


def ensure_venv(venv: Path = VENV_DIR, *, python: str = sys.executable) -> Path:
    """Create ``venv`` with MLServer installed unless it is already there; its ``mlserver``."""
    exe = venv / "bin" / "mlserver"
    stamp = venv / ".installed"
    wanted = " ".join((*PINS, _sklearn_pin()))
    if exe.exists() and stamp.exists() and stamp.read_text() == wanted:
        return exe
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    result = subprocess.run([*pip, *wanted.split()], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"mlserver peer: 'pip install {wanted}' into {venv} failed "
            f"(exit {result.returncode}):\n{result.stderr[-2000:]}"
        )
    stamp.write_text(wanted)
    return exe


def write_server_folder(
    folder: Path,
    model_file: Path,
    *,
    model_name: str = "rf",
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    max_batch_size: int = 32,
    max_batch_time_s: float = 0.002,
) -> None:
    """Write ``settings.json`` and ``<model_name>/{model.joblib, model-settings.json}``."""
    model_dir = folder / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, model_dir / "model.joblib")
    model_settings = {
        "name": model_name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time_s,
        "parameters": {
            "uri": "./model.joblib",
            "version": "v1",
            "extra": {"predict_fn": "predict_proba"},
        },
    }
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "debug": False,
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))


def mlserver_process(
    folder: Path,
    model_file: Path,
    *,
    model_name: str = "rf",
    http_port: int | None = None,
    log_path: Path | None = None,
    venv: Path = VENV_DIR,
) -> ServerProcess:
    """An (unstarted) MLServer serving ``model_file`` from ``folder`` on free loopback ports."""
    exe = ensure_venv(venv)
    port = http_port or free_port()
    write_server_folder(
        folder,
        model_file,
        model_name=model_name,
        http_port=port,
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    return ServerProcess(
        name="mlserver",
        argv=[str(exe), "start", str(folder)],
        base_url=f"http://127.0.0.1:{port}",
        ready_path=f"/v2/models/{model_name}/ready",
        cwd=str(folder),
        log_path=log_path,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MLServer 1.7.1 benchmark peer")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create benchmarks/.venv-mlserver")
    serve = sub.add_parser("serve", help="serve the reference model in the foreground")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--folder", type=Path, default=BENCH_DIR / ".work" / "mlserver")
    args = parser.parse_args(argv)
    if args.command == "install":
        print(ensure_venv())
        return
    from benchmarks import workload

    server = mlserver_process(args.folder, workload.model_path(), http_port=args.port)
    server.start()
    print(f"MLServer ready at {server.base_url} (pid {server.pid}); Ctrl-C to stop", flush=True)
    try:
        assert server.proc is not None
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
