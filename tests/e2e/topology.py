"""The scaled-out topology as separate processes on loopback: an S3 server (moto, in this
process so that it can be stopped and started again with its buckets), N ``mlgate serve --role
gateway`` processes, one ``--role monitor`` and, when installed, one ``--role trainer``; every
mlgate process configured by ``MLGATE_REGISTRY`` / ``MLGATE_LOGS`` (+ the S3 endpoint and
credentials) alone. Used by tests/e2e/test_topology.py and benchmarks/bench_topology.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import S3_ENV
from tests.e2e.processes import MlgateProcess, child_env, try_scrape, wait_until
from tests.helpers import free_port

ADMIN_TOKEN = "topology-admin"
TOML = """
[gateway]
log_flush_interval_s = {flush_s}
poll_interval_s = {poll_s}
[monitor]
interval_s = 0.5
window_rows = 200
min_rows = 100
"""


class S3Server:
    """moto's S3 server in its own process (``tests/e2e/s3_server.py``) on a fixed loopback
    port; ``stop()`` then ``start()`` is an outage that keeps the data."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "s3.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.running = False

    def _wait(self, listening: bool) -> None:
        def state() -> bool:
            assert self._process is not None and self._process.poll() is None, (
                self.log_path.read_text()
            )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return listening
            except OSError:
                return not listening

        wait_until(state, 60, f"S3 server {'up' if listening else 'down'}")
        self.running = listening

    def start(self) -> None:
        if self._process is None:
            log = self.log_path.open("ab")
            with log:  # the child has its own copy of the descriptor
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.e2e.s3_server", str(self.port)],
                    stdout=log, stderr=subprocess.STDOUT, env=child_env(),
                )  # fmt: skip
        else:
            self._process.send_signal(signal.SIGUSR2)
        self._wait(listening=True)

    def stop(self) -> None:
        """Stop listening (the process and its data stay)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGUSR1)
        self._wait(listening=False)

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(30)
            self._process = None
        self.running = False


class Topology:
    """Starts and stops the parts; ``gateways`` are base URLs, ``monitor_metrics`` a URL."""

    def __init__(
        self,
        root: Path,
        *,
        gateways: int = 2,
        monitor: bool = True,
        trainer: bool = False,
        flush_s: float = 1.0,
        poll_interval_s: float = 0.25,
        gateway_args: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.s3 = S3Server(root)
        self.bucket = f"topology-{uuid.uuid4().hex[:12]}"
        self.n_gateways = gateways
        self.with_monitor = monitor
        self.with_trainer = trainer
        self.flush_s = flush_s
        self.poll_interval_s = poll_interval_s
        self.gateway_args = gateway_args
        self.processes: dict[str, MlgateProcess] = {}
        self.gateways: list[str] = []
        self.monitor_metrics: str | None = None
        self._saved_env: dict[str, str | None] = {}

    # -- storage ----------------------------------------------------------------------------
    @property
    def registry_url(self) -> str:
        return f"s3://{self.bucket}/registry"

    @property
    def logs_url(self) -> str:
        return f"s3://{self.bucket}/logs"

    def storage_env(self) -> dict[str, str]:
        """The only configuration the mlgate processes get (besides tuning in mlgate.toml)."""
        return {
            **S3_ENV,
            "AWS_ENDPOINT_URL": self.s3.url,
            "MLGATE_REGISTRY": self.registry_url,
            "MLGATE_LOGS": self.logs_url,
        }

    def enter_env(self) -> None:
        """Point this (test) process at the same store, for Registry(...) calls; ``stop()``
        puts the environment back."""
        keys = [*self.storage_env(), "MLGATE_S3_ENDPOINT_URL"]
        self._saved_env = {k: os.environ.get(k) for k in keys}
        os.environ.update(self.storage_env())
        # in this process the endpoint also goes into the registry's storage options: s3fs
        # reuses a filesystem made with equal options, which would still point at the S3
        # server of an earlier topology
        os.environ["MLGATE_S3_ENDPOINT_URL"] = self.s3.url

    def leave_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    # -- processes --------------------------------------------------------------------------
    def _start(self, name: str, args: list[str], **extra: str) -> MlgateProcess:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        env = child_env(**self.storage_env(), MLGATE_HOME=str(home), **extra)
        proc = MlgateProcess(name, args, env=env, cwd=self.root, log_dir=self.root)
        self.processes[name] = proc
        return proc

    def start(self) -> None:
        (self.root / "mlgate.toml").write_text(
            TOML.format(flush_s=self.flush_s, poll_s=self.poll_interval_s)
        )
        self.s3.start()
        self.enter_env()
        import boto3

        boto3.client("s3", endpoint_url=self.s3.url, region_name="us-east-1").create_bucket(
            Bucket=self.bucket
        )

    def start_gateways(self) -> None:
        for i in range(self.n_gateways):
            port = free_port()
            self._start(
                f"gateway-{i + 1}",
                ["serve", "--role", "gateway", "--port", str(port), "--log-level", "warning",
                 "--grpc-port", str(free_port()), *self.gateway_args],
                MLGATE_ADMIN_TOKEN=ADMIN_TOKEN,
            )  # fmt: skip
            self.gateways.append(f"http://127.0.0.1:{port}")

    def start_companions(self) -> None:
        if self.with_monitor:
            port = free_port()
            self._start(
                "monitor",
                ["serve", "--role", "monitor", "--metrics-port", str(port)],
                MLGATE_LEASE_TTL_S="5",
            )
            self.monitor_metrics = f"http://127.0.0.1:{port}/metrics"
        if self.with_trainer:
            self._start("trainer", ["serve", "--role", "trainer"])

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        def ready(url: str) -> bool:
            for proc in self.processes.values():
                proc.check_alive()
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        for url in self.gateways:
            wait_until(lambda u=url: ready(u), timeout_s, f"gateway {url} ready")  # type: ignore[misc]
        if self.monitor_metrics is not None:
            wait_until(
                lambda: try_scrape(self.monitor_metrics or "") is not None,
                timeout_s,
                "monitor /metrics",
            )

    def stop(self) -> dict[str, int]:
        """SIGTERM every process (in parallel); their exit codes."""
        with ThreadPoolExecutor(max(1, len(self.processes))) as pool:
            codes = dict(
                zip(self.processes, pool.map(lambda p: p.stop(), self.processes.values()),
                    strict=True)
            )  # fmt: skip
        self.s3.close()
        self.leave_env()
        return codes

    # -- observation ------------------------------------------------------------------------
    def load_seconds(self, model: str) -> dict[str, dict[int, float]]:
        """Each gateway's load (fetch + compile + warm) time per loaded version."""
        out = {}
        for url in self.gateways:
            r = httpx.get(f"{url}/admin/models", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            state = next(m for m in r.json()["models"] if m["name"] == model)
            out[url] = {v["version"]: v["load_s"] for v in state["loaded"]}
        return out

    def generation(self, url: str, model: str) -> int | None:
        """The route generation a gateway serves (from its /admin/models)."""
        r = httpx.get(
            f"{url}/admin/models", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
        )
        for state in r.json()["models"]:
            if state["name"] == model and state["ready"]:
                return int(state["route"]["generation"])
        return None

    def propagation_s(self, registry: Any, model: str, route: Any) -> list[float]:
        """Seconds from a route change until each gateway serves it: from the route's
        ``updated_at`` (stamped just before its write) to the ``reported_at`` of the report
        each gateway writes to the registry right after installing a new route (both on this
        machine's clock; read from the store, so measuring loads no gateway)."""
        from registry import gateway_states

        changed_at = _utc(route.updated_at)
        deadline = time.monotonic() + 30
        while True:
            states = [
                s for s in gateway_states(registry, model) if s.generation >= route.generation
            ]
            if len(states) >= len(self.gateways):
                return sorted(_utc(s.reported_at) - changed_at for s in states)
            assert time.monotonic() < deadline, f"generation {route.generation}: {states}"
            time.sleep(0.1)


def _utc(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
