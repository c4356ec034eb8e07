"""The servers compared by ``http_bench``: how to prepare, start and address each one.

Every target serves the reference model (``benchmarks.workload``) as ``rf`` over the Open
Inference Protocol on a free loopback port. ``prepare`` does the slow one-off work (installing
MLServer, registering the model in a temporary mlgate home) before any clock starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import mlserver_peer
from benchmarks.proc import ServerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Target:
    """A server under test. ``make(workdir, model_file)`` returns it unstarted."""

    name: str
    description: str
    make: Callable[[Path, Path], ServerProcess]
    model_name: str = "rf"
    metrics_path: str | None = None  # mlgate's Prometheus endpoint: rows per batch, queue time
    predicts: bool = True  # False: answers a constant (a floor), its answers are not checked

    def infer_path(self) -> str:
        return f"/v2/models/{self.model_name}/infer"


def _naive(runtime: str) -> Callable[[Path, Path], ServerProcess]:
    def make(workdir: Path, model_file: Path) -> ServerProcess:
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.naive_server", "--port", str(port)]
        argv += ["--model", str(model_file), "--runtime", runtime]
        return ServerProcess(
            name=f"naive-{runtime}",
            argv=argv,
            base_url=f"http://127.0.0.1:{port}",
            ready_path="/v2/health/ready",
            cwd=str(REPO),
            log_path=workdir / f"naive-{runtime}.log",
        )

    return make


def _granian_floor(workdir: Path, model_file: Path) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        name="granian-floor",
        argv=[sys.executable, "-m", "benchmarks.granian_floor", "--port", str(port)],
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/v2/health/ready",
        cwd=str(REPO),
        log_path=workdir / "granian-floor.log",
    )


def _mlserver(workdir: Path, model_file: Path) -> ServerProcess:
    return mlserver_peer.mlserver_process(
        workdir / "mlserver", model_file, log_path=workdir / "mlserver.log"
    )


# A checkout of another mlgate commit (``git worktree add /tmp/baseline <commit>``): the
# ``mlgate-baseline`` target serves it, for side-by-side runs of a change against its parent.
BASELINE_ENV = "MLGATE_BENCH_BASELINE"


def _mlgate_cli(tree: Path | None = None) -> list[str]:
    if tree is not None:  # that checkout's code first on the path (PYTHONPATH, set below)
        return [sys.executable, "-P", "-c", "from mlgate.cli import main; main()"]
    exe = VENV_BIN / "mlgate"
    return [str(exe) if exe.exists() else "mlgate"]


def _baseline_tree() -> Path:
    raw = os.environ.get(BASELINE_ENV)
    if not raw or not (Path(raw) / "mlgate" / "cli").is_dir():
        raise RuntimeError(
            f"mlgate-baseline: set {BASELINE_ENV} to an mlgate checkout (for example "
            f"`git worktree add /tmp/baseline main`), got {raw!r}"
        )
    return Path(raw).resolve()


def _mlgate(
    *,
    batching: bool,
    workers: int = 1,
    label: str = "mlgate",
    gateway_toml: str = "",
    baseline: bool = False,
) -> Callable[[Path, Path], ServerProcess]:
    def make(workdir: Path, model_file: Path) -> ServerProcess:
        tree = _baseline_tree() if baseline else None
        home = workdir / label
        if home.exists():  # a rerun in the same workdir: start from an empty registry
            shutil.rmtree(home)
        home.mkdir(parents=True)
        env = {**os.environ, "MLGATE_HOME": str(home)}
        for var in ("MLGATE_REGISTRY", "MLGATE_LOGS", "MLGATE_PREDICT_TOKEN"):
            env.pop(var, None)
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        # mlgate.toml is read from the working directory; batching off = one row per batch.
        settings = gateway_toml + ("" if batching else "max_batch_rows = 1\n")
        (home / "mlgate.toml").write_text(f"[gateway]\n{settings}" if settings else "")
        register = [*_mlgate_cli(tree), "models", "register", "rf", str(model_file)]
        register.append("--trust-pickle")
        done = subprocess.run(register, env=env, cwd=home, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"{label}: '{' '.join(register)}' failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-1500:]}"
            )
        port = free_port()
        serve = [*_mlgate_cli(tree), "serve", "--host", "127.0.0.1", "--port", str(port)]
        serve += ["--role", "gateway", "--workers", str(workers)]
        if tree is None:  # a baseline checkout may predate gRPC
            serve += ["--grpc-port", str(free_port())]
        serve += ["--log-level", "warning"]
        return ServerProcess(
            name=label,
            argv=serve,
            base_url=f"http://127.0.0.1:{port}",
            ready_path="/v2/health/ready",
            env=env,
            cwd=str(home),
            log_path=workdir / f"{label}.log",
        )

    return make


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "mlgate",
            "`mlgate serve --role gateway` (granian, RSGI front, 1 worker, dynamic batching, "
            "default settings)",
            _mlgate(batching=True),
            metrics_path="/metrics",
        ),
        Target(
            "mlgate-nobatch",
            "the same, batching off (`[gateway] max_batch_rows = 1` in mlgate.toml)",
            _mlgate(batching=False, label="mlgate-nobatch"),
            metrics_path="/metrics",
        ),
        Target(
            "mlgate-nojournal",
            "as `mlgate`, crash journal off (`[gateway] log_journal = false`)",
            _mlgate(batching=True, label="mlgate-nojournal", gateway_toml="log_journal = false\n"),
            metrics_path="/metrics",
        ),
        Target(
            "naive-sklearn",
            "naive Litestar + scikit-learn `predict_proba` on the event loop",
            _naive("sklearn"),
        ),
        Target(
            "naive-numba",
            "naive Litestar + mlgate compiled runtime (numba), no batching",
            _naive("numba"),
        ),
        Target(
            "mlserver",
            "MLServer 1.7.1 + mlserver-sklearn, adaptive batching 32 / 2 ms, 1 parallel worker",
            _mlserver,
        ),
        # not in the default run: the same server from another checkout (BASELINE_ENV)
        Target(
            "mlgate-baseline",
            f"`mlgate serve --role gateway` of the checkout in ${BASELINE_ENV} (1 worker, "
            "dynamic batching, default settings)",
            _mlgate(batching=True, label="mlgate-baseline", baseline=True),
            metrics_path="/metrics",
        ),
        Target(
            "granian-floor",
            "granian alone: the same server settings as `mlgate` (RSGI, 1 worker, uvloop) "
            "with an app that reads the body and answers a constant (the server's own cost)",
            _granian_floor,
            predicts=False,
        ),
        Target(
            "mlgate-w2",
            "`mlgate serve --role gateway --workers 2` (as `mlgate`, 2 processes, each batching)",
            _mlgate(batching=True, workers=2, label="mlgate-w2"),
            # no metrics_path: each scrape reaches one of the two workers at random
        ),
    )
}
DEFAULT_TARGETS = ("mlgate", "mlgate-nobatch", "naive-sklearn", "naive-numba", "mlserver")
