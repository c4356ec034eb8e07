"""Build the image and run it, where a Docker daemon answers (skipped otherwise: the
development machine has none). Checks what the structural tests cannot: it builds from the
lock, runs as user 10001, has no compiler, and reports healthy on /v2/health/live."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import httpx
import pytest

from tests.deploy.manifests import ROOT
from tests.helpers import free_port

pytestmark = pytest.mark.slow


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _docker_works(), reason="no Docker daemon on this machine")
def test_the_image_builds_runs_unprivileged_and_turns_healthy() -> None:
    tag = f"mlgate-test:{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        ["docker", "build", "-f", "deploy/Dockerfile", "-t", tag, "."],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    try:

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["docker", "run", "--rm", *args], capture_output=True,
                                  text=True, timeout=120)  # fmt: skip

        assert run("--entrypoint", "id", tag, "-u").stdout.strip() == "10001"
        assert run("--entrypoint", "sh", tag, "-c", "command -v gcc cc").returncode != 0
        assert run(tag, "--version").returncode == 0
        port = free_port()
        name = f"mlgate-{uuid.uuid4().hex[:8]}"
        started = subprocess.run(
            ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", tag],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        try:
            deadline = time.monotonic() + 180
            health = ""
            while time.monotonic() < deadline and health != "healthy":
                health = subprocess.run(
                    ["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
                    capture_output=True, text=True, timeout=30,
                ).stdout.strip()  # fmt: skip
                time.sleep(1)
            assert health == "healthy"
            assert httpx.get(f"http://127.0.0.1:{port}/v2/health/live").status_code == 200
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)
