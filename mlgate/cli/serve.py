"""``mlgate serve``: run the gateway (granian, RSGI, N worker processes) and its companions.

``--role gateway`` runs the HTTP gateway only. ``--role monitor`` / ``trainer`` run that
companion only; ``--role all`` (the default) runs the gateway here and the monitor and trainer
as child processes (``mlgate monitor run``, ``mlgate trainer run``), so training never stalls
serving. A companion whose command group is not installed is skipped with a notice.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import msgspec
import typer

import mlgate
from gateway.settings import GatewaySettings, SettingsError
from mlgate.app import ENV_LOG_LEVEL, ENV_LOGS, ENV_REGISTRY, ENV_SETTINGS
from mlgate.cli.common import HomeOption, LogsOption, RegistryOption, err_console, fail, locations

FACTORY = "mlgate.app:front_from_env"

# How each companion role is started: a `mlgate <group> <command>` child process.
# the companions start once the gateway is ready, or after this long whatever it does
COMPANION_DELAY_MAX_S = 20.0
COMPANIONS: dict[str, list[str]] = {
    "monitor": ["monitor", "run"],
    "trainer": ["trainer", "run"],
}


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


class Role(StrEnum):
    all = "all"
    gateway = "gateway"
    monitor = "monitor"
    trainer = "trainer"


def attach(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            min=0,
            max=65535,
            help="Port of OIP over gRPC (default: the gateway table's grpc_port, 8081); 0: none.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Gateway processes.")] = 1,
    role: Annotated[Role, typer.Option("--role", help="What this process runs.")] = Role.all,
    log_level: Annotated[
        LogLevel,
        typer.Option("--log-level", help="Server log level (model loads and swaps at info)."),
    ] = LogLevel.info,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (granian's access log).")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Prometheus /metrics port of the monitor companion (the gateway's is on --port).",
        ),
    ] = None,
) -> None:
    """Serve the registry's models over HTTP (OIP V2, KServe V1, MLflow) with hot-loading."""
    where = locations(home, registry, logs)
    try:
        settings = GatewaySettings.from_mapping(where.section("gateway"))
    except SettingsError as exc:
        fail(str(exc))
    settings = msgspec.structs.replace(
        settings,
        grpc_port=settings.grpc_port if grpc_port is None else grpc_port,
        grpc_host=settings.grpc_host or host,
        grpc_reuse_port=workers > 1,
    )
    env = {
        ENV_REGISTRY: where.registry,
        ENV_LOGS: where.logs,
        ENV_SETTINGS: settings.to_json().decode(),
        "MLGATE_HOME": str(where.home),  # the dashboard reads <home>/monitor.duckdb
        ENV_LOG_LEVEL: log_level.value,  # the workers log model loads, swaps and failures
    }
    if metrics_port is not None:
        env["MLGATE_MONITOR_METRICS_PORT"] = str(metrics_port)
    os.environ.update(env)
    if role in (Role.monitor, Role.trainer):
        code = _run_companion(role.value, wait=True)
        raise typer.Exit(code if isinstance(code, int) else 0)
    check_can_listen(host, port)  # before any model is loaded or companion started
    companions = Companions(host, port)
    if role is Role.all:
        companions.start_when_ready()
    grpc_text = f", gRPC on {settings.grpc_host}:{settings.grpc_port}" if settings.grpc_port else ""
    err_console.print(
        f"mlgate gateway on http://{host}:{port}{grpc_text} ({workers} worker(s)); "
        f"registry {where.registry}; logs {where.logs}",
        highlight=False,
    )
    # granian handles SIGTERM/SIGINT while it serves; should one arrive before or after,
    # unwind (so the companions below are stopped) instead of dying on the spot.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    code = 0
    try:
        run_gateway(host=host, port=port, workers=workers, log_level=log_level.value,
                    access_log=access_log, settings=settings)  # fmt: skip
    except SystemExit as exc:
        # a stop by signal is a clean end; the server's own failure (it exits 1 when it cannot
        # start) is passed on
        code = exc.code if isinstance(exc.code, int) and exc.code < 128 else 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        companions.stop()
    if code:
        fail(f"the gateway server stopped with exit status {code}", code)


def check_can_listen(host: str, port: int) -> None:
    """Fail with one line (and exit 1) when ``host:port`` cannot be listened on: in use,
    not an address of this machine, or a privileged port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # as the servers do: a port left in TIME_WAIT by a previous run is free to take
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen()
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit, where it is lower, so that
    the default connection cap (``max_connections = 0``) is what the machine allows rather
    than a login shell's 1024; the worker processes inherit it. Returns the soft limit in
    force (unchanged where the system refuses)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # e.g. macOS, whose hard limit may be "unlimited"
        return soft
    return hard


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_gateway(
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    settings: GatewaySettings,
    access_log: bool = False,
) -> None:
    """Run ``workers`` granian worker processes, each serving ``front_from_env()`` over RSGI,
    until SIGTERM/SIGINT: granian stops accepting and finishes in-flight requests, then each
    front's shutdown drains its batchers and flushes its log.

    The connection settings map onto granian's: ``http_header_timeout_s`` and
    ``http_keep_alive`` and ``http_max_header_bytes`` onto ``HTTP1Settings`` (hyper's header
    read timeout, which runs from the connection's start and while a kept-alive connection
    waits for its next request, and its read buffer limit, past which it answers 431),
    ``http2`` onto the HTTP mode (HTTP/1 only, or granian's HTTP/1-or-2 detection, which
    waits for a connection's first bytes without a timeout), ``http_header_timeout_s`` also
    onto ``HTTP2Settings``' keep-alive ping interval and its answer's timeout (hyper has no
    header or idle timeout over HTTP/2), ``max_connections`` onto ``backpressure`` (granian
    holds one permit per open connection and stops accepting when none is left)."""
    import multiprocessing

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings, HTTP2Settings

    raise_open_file_limit()  # before the cap is derived from it; the workers inherit it
    timeout_s = settings.http_header_timeout_s

    # each worker a fresh interpreter (granian uses the process's start method; Linux's
    # default, fork, would copy this process's state into every worker)
    multiprocessing.set_start_method("spawn", force=True)
    Granian(
        FACTORY,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        loop=Loops.uvloop,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.http_header_timeout_s * 1000)),
            keep_alive=settings.http_keep_alive,
            max_buffer_size=settings.http_max_header_bytes,
        ),
        http=HTTPModes.auto if settings.http2 else HTTPModes.http1,
        http2_settings=HTTP2Settings(
            max_headers_size=settings.http_max_header_bytes,
            # granian takes the interval in ms (at most a minute), the timeout in whole seconds
            keep_alive_interval=min(60_000, max(1, round(timeout_s * 1000))),
            keep_alive_timeout=max(1, math.ceil(timeout_s)),
        ),
        backpressure=settings.connections_per_worker,
        log_level=log_level,  # type: ignore[arg-type]
        log_access=access_log,
        workers_kill_timeout=60,
        respawn_failed_workers=True,  # a worker that dies is replaced (it replays its journal)
        # granian puts working_dir (default: the current directory) first on each worker's
        # import path; a ``registry/`` folder where `mlgate serve` runs would then shadow our
        # ``registry`` package, so point it at the directory our packages are installed in
        working_dir=Path(mlgate.__file__).resolve().parent.parent,
    ).serve()


class Companions:
    """The monitor and trainer child processes of ``--role all``, started once the gateway
    answers ready (or after ``COMPANION_DELAY_MAX_S``): started with it, their imports took
    the cores the gateway's start-up needed (on 2 cores its ready time grew ~2x), and the
    gateway is what clients wait for."""

    def __init__(self, host: str, port: int) -> None:
        self.host = _loopback(host)
        self.port = port
        self._children: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start_when_ready(self) -> None:
        threading.Thread(target=self._run, name="mlgate-companions", daemon=True).start()

    def _run(self) -> None:
        _wait_ready(self.host, self.port, COMPANION_DELAY_MAX_S, self._stopping)
        for name in COMPANIONS:
            with self._lock:
                if self._stopping.is_set():
                    return
                child = _run_companion(name, wait=False)
                if isinstance(child, subprocess.Popen):
                    self._children.append(child)

    def stop(self) -> None:
        """SIGTERM every companion started (none starts after this) and wait for it."""
        with self._lock:
            self._stopping.set()
            children = list(self._children)
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def _loopback(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _wait_ready(host: str, port: int, timeout_s: float, stop: threading.Event) -> bool:
    """Poll ``/v2/health/ready`` until it answers 200, ``timeout_s`` passes or ``stop``."""
    import http.client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        conn = http.client.HTTPConnection(host, port, timeout=1)
        try:
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        finally:
            conn.close()
        stop.wait(0.05)
    return False


def _run_companion(name: str, *, wait: bool) -> subprocess.Popen[bytes] | int | None:
    """Start ``mlgate <group> <command>`` for a companion role, if that group exists."""
    from mlgate.cli import app as cli_app

    group = COMPANIONS[name][0]
    groups = {g.name for g in cli_app.registered_groups} | {
        c.name for c in cli_app.registered_commands
    }
    if group not in groups:
        err_console.print(f"notice: the {name} is not installed; role {name!r} skipped")
        return None
    command = [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", *COMPANIONS[name]]
    if wait:
        # become the companion: as a container's PID 1 it receives SIGTERM itself and shuts
        # down cleanly (the monitor releases its lease), instead of dying with a parent
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)
    return subprocess.Popen(command)
