"""Server processes for benchmarks: free ports, readiness polling, CPU accounting, clean stop.

Each server runs in its own process group (``start_new_session``) so that stopping it also
stops whatever it spawned (uvicorn workers, MLServer's parallel inference workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] = ppid
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root``'s live process tree, plus what its reaped children used.

    Threads are included (``/proc/<pid>/stat`` sums them); ``cutime``/``cstime`` add children
    that exited and were waited for.
    """
    ticks = 0
    for pid in descendants(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # after the command name: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
        ticks += sum(int(v) for v in fields[11:15])
    return ticks / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or waiting on I/O) since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...; guest time is already in user.
    return (sum(fields[:8]) - fields[3] - fields[4]) / _CLOCK_TICKS


@dataclass
class ServerProcess:
    """A server under test, started in its own process group; always :meth:`stop` it."""

    name: str
    argv: Sequence[str]
    base_url: str
    ready_path: str
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, *, timeout_s: float = 120.0) -> None:
        """Start the server and poll ``ready_path`` until it answers 200 (or fail clearly)."""
        env = dict(os.environ if self.env is None else self.env)
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                list(self.argv),
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        url = self.base_url + self.ready_path
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name}: exited with code {self.proc.returncode} before it was "
                        f"ready{self._log_hint()}"
                    )
                try:
                    resp = client.get(url)
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(0.2)  # polling interval of a readiness probe, not a wait for an event
        raise RuntimeError(
            f"{self.name}: {url} not ready after {timeout_s:.0f} s (last: {last}){self._log_hint()}"
        )

    def _log_hint(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace")[-1500:]
        return f"; log {self.log_path} ends with:\n{tail}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name}: not started")
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's whole process tree."""
        return tree_cpu_seconds(self.pid)

    def stop(self, *, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(pgid, signal.SIGKILL)  # stragglers: workers the leader left behind
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
