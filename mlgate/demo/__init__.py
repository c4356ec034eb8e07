"""``mlgate demo``: the closed loop on one machine, driven through the real CLI and HTTP.

1. train version 1 on River's Agrawal stream (loan approvals, rule 0) and register it with
   a labelled reference sample: it becomes the champion;
2. ``mlgate serve`` (gateway, monitor and trainer) in a child process; a client sends
   traffic over OIP and, a couple of seconds later, the ground truth through
   ``/v2/models/{m}/feedback``;
3. the rule changes (Agrawal rule 2): the model's accuracy falls, the monitor's detector
   raises a signed alert (a local receiver prints it), the trainer retrains on the labelled
   production rows, the gate compares candidate and champion on the newest rows, the new
   version goes shadow -> canary -> champion under the analysed rollout, accuracy recovers;
4. a timeline of what happened (event, time, accuracy before and after) and the HTML report.

Everything lives under ``<home>/demo`` (made afresh each run) and talks over 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from mlgate.demo.data import FEATURES, Traffic, train_champion
from mlgate.demo.receiver import WebhookReceiver
from registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

MODEL = "loans"
RATE_RPS = 40.0  # requests per second the client sends
LABEL_DELAY_S = 2.0  # the ground truth of a request arrives this long after its answer
BEFORE_S = 10.0  # seconds of traffic under the old rule before it changes
AFTER_PROMOTION_S = 6.0  # seconds of traffic after the promotion, to measure recovery
DEADLINE_S = 160.0  # the whole loop must have ended by then
ACCURACY_ROWS = 150  # answers averaged for "accuracy before / after" an event

DEMO_CONFIG = """\
# written by `mlgate demo`: quick polling, small windows and a short rollout plan, so that
# the loop runs in a couple of minutes at 40 requests per second
[gateway]
poll_interval_s = 0.2
log_flush_interval_s = 0.5

[monitor]
interval_s = 1
window_rows = 200
min_rows = 200
min_labels = 50

[trainer]
poll_interval_s = 1
start_delay_s = 12        # let the drifted rows' labels arrive before retraining
min_labelled_rows = 250
keep_reference = false    # the reference holds the old rule: learn the new one alone
recent_rows = 500         # the newest labelled rows: all of them under the new rule
holdout_share = 0.2
cooldown_s = 600
bootstrap_rounds = 200

[rollout]
shadow_s = 5
shadow_requests = 100
steps = [50.0, 100.0]
step_interval_s = 5
step_min_requests = 60
min_baseline_requests = 50
label_maturity_s = 3
min_labelled = 60
analysis_interval_s = 1
max_wait_s = 60
"""

SHOWN = (
    "model.drift.detected",
    "model.performance.degraded",
    "trainer.run.started",
    "trainer.run.finished",
    "trainer.run.rejected",
    "trainer.run.failed",
    "rollout.started",
    "rollout.canary",
    "rollout.step",
    "rollout.promoted",
    "rollout.rolled_back",
    "rollout.aborted",
)
ENDS = (
    "rollout.promoted",
    "rollout.rolled_back",
    "rollout.aborted",
    "trainer.run.rejected",
    "trainer.run.failed",
)

# ``-P``: the demo's home holds folders named ``registry`` and ``logs``; never import from cwd
MLGATE = (sys.executable, "-P", "-m", "mlgate")


class DemoError(RuntimeError):
    """A step of the demo did not do what it should."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    """One request the client sent: when, which version answered, and was it right."""

    t: float
    version: int
    route: str
    correct: bool


class Client:
    """Sends one-row OIP requests at ``RATE_RPS`` and their labels ``LABEL_DELAY_S`` later."""

    def __init__(self, base: str, traffic: Traffic) -> None:
        self.base = base
        self.traffic = traffic
        self.answers: list[Answer] = []
        self.failed: list[str] = []
        self.start = time.monotonic()
        self.wall_start = time.time()
        self._labels: deque[tuple[float, str, int]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-client", daemon=True)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def now(self) -> float:
        return time.monotonic() - self.start

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            i = 0
            while not self._stop.is_set():
                due = self.start + i / RATE_RPS
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                self._one(http, f"req-{i}")
                self._send_labels(http)
                i += 1
            self._send_labels(http, everything=True)

    def _one(self, http: httpx.Client, request_id: str) -> None:
        row, label = self.traffic.next()
        body = {
            "id": request_id,
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, len(FEATURES)],
                    "datatype": "FP32",
                    "data": row.tolist(),
                }
            ],
        }
        try:
            r = http.post(f"/v2/models/{MODEL}/infer", json=body)
        except httpx.TransportError as exc:
            self.failed.append(f"{request_id}: {type(exc).__name__}")
            return
        if r.status_code != 200:
            self.failed.append(f"{request_id}: {r.status_code} {r.text[:200]}")
            return
        outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
        predicted = int(outputs["predict"][0])
        self.answers.append(
            Answer(
                self.now(),
                int(r.headers["x-model-version"]),
                r.headers["x-route"],
                predicted == label,
            )
        )
        self._labels.append((time.monotonic() + LABEL_DELAY_S, request_id, label))

    def _send_labels(self, http: httpx.Client, *, everything: bool = False) -> None:
        now = time.monotonic()
        batch: list[dict[str, Any]] = []
        while self._labels and (everything or self._labels[0][0] <= now) and len(batch) < 200:
            _due, request_id, label = self._labels.popleft()
            batch.append({"id": request_id, "label": label})
        if not batch:
            return
        try:
            r = http.post(f"/v2/models/{MODEL}/feedback", json={"labels": batch})
        except httpx.TransportError as exc:
            self.failed.append(f"feedback: {type(exc).__name__}")
            return
        if r.status_code >= 300:
            self.failed.append(f"feedback: {r.status_code} {r.text[:200]}")

    def accuracy(self, start: float, end: float, *, last: bool) -> float | None:
        """Accuracy of the ``ACCURACY_ROWS`` answers nearest ``start`` (``last``: the ones
        just before ``end``) in [start, end)."""
        inside = [a.correct for a in self.answers if start <= a.t < end]
        picked = inside[-ACCURACY_ROWS:] if last else inside[:ACCURACY_ROWS]
        return float(np.mean(picked)) if picked else None


class Demo:
    """The loop's state: where it lives, the server, the client, the timeline."""

    def __init__(self, home: Path, out: Console) -> None:
        self.home = home
        self.out = out
        self.registry = Registry("file://" + str(home / "registry"))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        self.server: subprocess.Popen[bytes] | None = None
        self.timeline: list[tuple[float, str, str]] = []  # (t, event, detail)

    # -- plumbing ------------------------------------------------------------------------------
    def cli(self, *args: str, show: bool = True) -> str:
        """Run ``mlgate ARGS`` as a user would, in the demo's home; fail on a non-zero exit."""
        cmd = [*MLGATE, *args, "--home", str(self.home)]
        if show:
            self.out.print(f"[dim]$ mlgate {' '.join(args)}[/]", highlight=False)
        done = subprocess.run(
            cmd, cwd=self.home, env={**os.environ, "COLUMNS": "160"}, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise DemoError(f"mlgate {' '.join(args)} failed: {done.stderr.strip()}")
        if show and done.stdout.strip():
            self.out.print(done.stdout.rstrip(), highlight=False, markup=False)
        return done.stdout

    def start_server(self, webhook_url: str) -> None:
        cmd = [
            *MLGATE,
            "serve",
            "--home",
            str(self.home),
            "--port",
            str(self.port),
            "--grpc-port",
            "0",
            "--log-level",
            "warning",
        ]
        self.out.print(f"[dim]$ mlgate serve --port {self.port}   (gateway, monitor, trainer)[/]")
        env = {
            **os.environ,
            "MLGATE_HOME": str(self.home),
            "MLGATE_WEBHOOK_URL": webhook_url,
            "MLGATE_WEBHOOK_SECRET": self.secret,
        }
        log = (self.home / "serve.log").open("wb")
        self.server = subprocess.Popen(
            cmd, cwd=self.home, env=env, stdout=log, stderr=log, start_new_session=True
        )
        self.wait_until(lambda: self.get("/v2/health/ready") == 200, "the gateway to be ready")

    def stop_server(self) -> None:
        if self.server is None:
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
        self.server = None

    def get(self, path: str) -> int:
        try:
            return httpx.get(self.base + path, timeout=5).status_code
        except httpx.TransportError:
            return 0

    def wait_until(self, condition: Any, what: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.server is not None and self.server.poll() is not None:
                raise DemoError(
                    f"mlgate serve exited (code {self.server.returncode}); "
                    f"see {self.home / 'serve.log'}"
                )
            if time.monotonic() > deadline:
                raise DemoError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def mark(self, t: float, event: str, detail: str = "") -> None:
        self.timeline.append((t, event, detail))
        self.out.print(f"[bold cyan]{t:6.1f} s[/]  {event}  [dim]{detail}[/]", highlight=False)

    # -- the steps -----------------------------------------------------------------------------
    def register(self) -> None:
        self.out.rule("1. train version 1 and register it")
        model, reference, accuracy = train_champion()
        mv = self.registry.register(
            MODEL,
            model,
            reference=reference,
            metrics={"accuracy": accuracy},
            tags={"dataset": "river.datasets.synth.Agrawal(0)"},
        )
        self.out.print(
            f"gradient boosting on Agrawal rule 0, holdout accuracy {accuracy:.3f} -> "
            f"registered {MODEL} version {mv.version} (champion)",
            highlight=False,
        )

    def loop(self, client: Client) -> None:
        """Traffic under the old rule, the change, then watch the events until the rollout
        ends (or the deadline)."""
        seen = len(self.registry.events(MODEL))
        self.mark(
            client.now(), "serving v1", f"{RATE_RPS:g} requests/s, labels {LABEL_DELAY_S:g} s later"
        )
        changed = False
        ended_at: float | None = None
        while True:
            t = client.now()
            if not changed and t >= BEFORE_S:
                client.traffic.drift()
                changed = True
                self.mark(t, "the rule changes", "Agrawal rule 0 -> rule 2 (concept drift)")
            events = self.registry.events(MODEL)
            for event in events[seen:]:
                if event.kind in SHOWN:
                    when = datetime.fromisoformat(event.ts.replace("Z", "+00:00")).timestamp()
                    self.mark(
                        when - client.wall_start,
                        event.kind,
                        _describe(event.kind, event.detail, event.version),
                    )
                    if event.kind in ENDS and ended_at is None:
                        ended_at = client.now()
            seen = len(events)
            if ended_at is not None and client.now() - ended_at >= AFTER_PROMOTION_S:
                return
            if client.now() > DEADLINE_S:
                raise DemoError(
                    f"the loop did not end within {DEADLINE_S:g} s; see the events "
                    f"with `mlgate rollout status {MODEL}`"
                )
            if self.server is not None and self.server.poll() is not None:
                raise DemoError(f"mlgate serve exited; see {self.home / 'serve.log'}")
            time.sleep(0.25)

    def summary(self, client: Client) -> None:
        self.out.rule("timeline")
        from rich.table import Table

        table = Table()
        for col in ("t (s)", "event", "accuracy before", "accuracy after", "detail"):
            table.add_column(col, justify="right" if col != "event" and col != "detail" else "left")
        ts = [t for t, _e, _d in self.timeline]
        end = client.now() + 1
        for i, (t, event, detail) in enumerate(self.timeline):
            before = client.accuracy(0.0, t, last=True)
            nxt = ts[i + 1] if i + 1 < len(ts) else end
            after = client.accuracy(t, max(nxt, t + 1e-3), last=False)
            table.add_row(f"{t:.1f}", event, _pct(before), _pct(after), detail[:70])
        self.out.print(table)
        by_version: dict[int, list[bool]] = {}
        for a in client.answers:
            by_version.setdefault(a.version, []).append(a.correct)
        drift_t = next((t for t, e, _ in self.timeline if e == "the rule changes"), 0.0)
        rollout_t = _first(self.timeline, "rollout")
        self.out.print(
            f"requests: {len(client.answers)} answered, {len(client.failed)} failed; "
            f"accuracy before the change {_pct(client.accuracy(0, drift_t, last=True))}, "
            f"after it on v1 {_pct(client.accuracy(drift_t, rollout_t, last=True))}, "
            f"at the end {_pct(client.accuracy(0, end, last=True))}",
            highlight=False,
        )
        self.out.print(
            f"answers per version: { {v: len(c) for v, c in sorted(by_version.items())} }",
            highlight=False,
        )


def _first(timeline: list[tuple[float, str, str]], prefix: str) -> float:
    return next((t for t, e, _ in timeline if e.startswith(prefix)), float("inf"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _describe(kind: str, detail: dict[str, Any], version: int | None) -> str:
    if kind.startswith("model."):
        perf = detail.get("performance") or {}
        acc = perf.get("accuracy") if isinstance(perf, dict) else None
        window = detail.get("window") or {}
        extra = f", window accuracy {acc:.3f}" if isinstance(acc, float) else ""
        alert = str(detail.get("alert_id", ""))[:16]
        return f"monitor alert {alert} on v{version} window {window.get('seq')}{extra}"
    if kind.startswith("trainer."):
        reason = str(detail.get("reason") or detail.get("trigger", {}).get("alert_id") or "")
        return f"run {str(detail.get('run_id', ''))[-6:]}: {reason}"
    weight = detail.get("next_weight", detail.get("weight"))
    phase = detail.get("phase") or ""
    return f"v{detail.get('version')} {phase} weight {weight}: {detail.get('reason') or ''}"


def run_demo(home: Path, out: Console) -> Path:
    """Run the whole loop in ``home`` (emptied first). Returns the HTML report's path."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / "mlgate.toml").write_text(DEMO_CONFIG)
    demo = Demo(home, out)
    demo.register()

    def on_alert(ok: bool, headers: dict[str, str], payload: dict[str, Any]) -> None:
        out.print(
            f"        [bold]webhook[/] {payload.get('type')} (signature "
            f"{'valid' if ok else 'INVALID'}, webhook-id {headers.get('webhook-id', '')[:20]})",
            highlight=False,
        )

    report = home / "drift-report.html"
    with WebhookReceiver(demo.secret, on_alert) as receiver:
        out.rule("2. serve, stream traffic with delayed labels, change the rule")
        try:
            demo.start_server(receiver.url)
            with Client(demo.base, Traffic()) as client:
                demo.loop(client)
        finally:
            demo.stop_server()
    demo.summary(client)
    if client.failed:
        raise DemoError(f"{len(client.failed)} requests failed, e.g. {client.failed[:3]}")
    out.rule("3. history, route and report")
    demo.cli("trainer", "history", MODEL)
    demo.cli("models", "list")
    demo.cli("monitor", "report", MODEL, "--format", "html", "--out", str(report), show=False)
    out.print(f"HTML drift report written to {report}", highlight=False)
    return report
