"""Helpers for tests that run mlgate as real processes: start ``mlgate ...`` with its output in
a file, scrape a Prometheus endpoint into a dict, wait for an HTTP endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

CLI = [sys.executable, "-P", "-c", "from mlgate.cli import main; main()"]


class MlgateProcess:
    """``mlgate <args>`` as a child process; stdout and stderr go to ``<log_dir>/<name>.log``."""

    def __init__(
        self, name: str, args: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*CLI, *args], cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        assert self.alive(), f"{self.name} exited {self.process.returncode}:\n{self.output()}"

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._log.close()
        return int(self.process.returncode)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)
        self._log.close()


def scrape(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    """Every sample of a Prometheus endpoint as ``{'name{a="x",b="y"}': value}`` (labels
    sorted; ``name`` alone without labels)."""
    text = httpx.get(url, timeout=timeout_s).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return out


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    found = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            found += value
    return found


def try_scrape(url: str) -> dict[str, float] | None:
    """``scrape`` or None while the endpoint is not up yet."""
    try:
        return scrape(url)
    except httpx.TransportError:
        return None


def wait_until(condition: Any, timeout_s: float, what: str, every_s: float = 0.05) -> float:
    """Poll ``condition()`` until truthy; returns the seconds it took, fails naming ``what``."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(every_s)


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment (PYTHONPATH, S3 endpoint and credentials) plus ``extra``, with
    any MLGATE_* storage setting of the caller's shell removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
    for key in ("MLGATE_S3_ENDPOINT_URL",):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env
