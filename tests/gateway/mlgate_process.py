"""``mlgate serve`` as a real process on free loopback ports (HTTP and gRPC), for the tests that
drive it with other projects' clients."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers import free_port, spawned_children, wait_for


class ServedProcess:
    """Where a running ``mlgate serve`` listens, and its log store."""

    def __init__(self, http_url: str, grpc_address: str, logs: Path, pid: int) -> None:
        self.http_url = http_url
        self.grpc_address = grpc_address
        self.logs = logs
        self.pid = pid

    def workers(self) -> list[int]:
        """Process ids of the server's workers (granian's spawned children)."""
        return spawned_children(self.pid)

    @property
    def http_address(self) -> str:
        return self.http_url.removeprefix("http://")


@contextmanager
def mlgate_serve(
    root: Path, config: str = "", *, open_files_soft: int | None = None
) -> Iterator[ServedProcess]:
    """Serve the registry under ``root / "registry"`` with ``config`` as ``mlgate.toml``, until
    the block ends (SIGTERM, then the process is awaited). ``open_files_soft``: start it with
    this soft open-file limit (as a login shell's 1024 would)."""

    def limit_open_files() -> None:
        if open_files_soft is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files_soft, hard))

    (root / "mlgate.toml").write_text(config)
    port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "serve",
         "--role", "gateway", "--port", str(port), "--grpc-port", str(grpc_port),
         "--log-level", "warning", "--registry", str(root / "registry"),
         "--logs", str(root / "logs")],
        cwd=root, env={**os.environ, "MLGATE_HOME": str(root / "home")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=limit_open_files,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
        try:
            return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout_s=300, every_s=0.1)  # a cold start on a busy machine
        yield ServedProcess(url, f"127.0.0.1:{grpc_port}", root / "logs", process.pid)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        process.stdout.close()  # type: ignore[union-attr]
