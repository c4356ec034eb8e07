"""``mlgate demo``: the whole loop on embedded defaults, driven through the real CLI and HTTP.

1. train three models on scikit-learn's bundled breast-cancer data; register the first with
   a reference sample (it becomes the champion);
2. serve it (``mlgate serve`` in a child process) and query it over OIP, KServe V1 and MLflow;
3. register two more versions, start one as a 20% canary and the other as a shadow, send
   keyed traffic, show ``mlgate rollout status``, promote the canary;
4. send traffic that drifts half way (plus ground-truth feedback), stop the server
   gracefully (the prediction log is flushed), run ``mlgate monitor run --once``: a local
   webhook receiver prints the signed alert; the HTML report is written to a file.

Everything lives under ``<home>/demo`` (made afresh each run) and talks over 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from mlgate.demo.data import DRIFT_FACTOR, DemoData, load_data, traffic, train_models
from mlgate.demo.receiver import WebhookReceiver
from registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

MODEL = "breast-cancer"
ROWS_PER_REQUEST = 50
CLEAN_ROWS = 2000
DRIFTED_ROWS = 2000

DEMO_CONFIG = """\
# written by `mlgate demo`: quick polling and small windows so the tour runs in seconds
[gateway]
poll_interval_s = 0.2
log_flush_interval_s = 0.5

[monitor]
window_rows = 500
min_rows = 500
"""


# ``-P``: the demo's home holds folders named ``registry`` and ``logs``; never import from cwd
MLGATE = (sys.executable, "-P", "-m", "mlgate")


class DemoError(RuntimeError):
    """A step of the demo did not do what it should."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """The tour's state: where it lives, the CLI it drives, the console it prints to."""

    def __init__(self, home: Path, out: Console) -> None:
        self.home = home
        self.out = out
        self.registry_url = "file://" + str(home / "registry")
        self.port = _free_port()
        self.grpc_port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        self.server: subprocess.Popen[bytes] | None = None

    # -- plumbing ------------------------------------------------------------------------------
    def cli(self, *args: str, env: dict[str, str] | None = None, show: bool = True) -> str:
        """Run ``mlgate ARGS`` as a user would, in the demo's home; fail on a non-zero exit."""
        cmd = [*MLGATE, *args, "--home", str(self.home)]
        if show:
            self.out.print(f"[dim]$ mlgate {' '.join(args)}[/]", highlight=False)
        done = subprocess.run(
            cmd,
            cwd=self.home,
            env={**os.environ, "COLUMNS": "160", **(env or {})},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise DemoError(f"mlgate {' '.join(args)} failed: {done.stderr.strip()}")
        if show and done.stdout.strip():
            self.out.print(done.stdout.rstrip(), highlight=False, markup=False)
        return done.stdout

    def start_server(self) -> None:
        cmd = [*MLGATE, "serve", "--role", "gateway", "--home", str(self.home)]
        cmd += ["--port", str(self.port), "--grpc-port", str(self.grpc_port)]
        cmd += ["--log-level", "warning"]
        self.out.print(
            f"[dim]$ mlgate serve --role gateway --port {self.port} --grpc-port {self.grpc_port}[/]"
        )
        self.server = subprocess.Popen(cmd, cwd=self.home, start_new_session=True)
        self.wait_until(lambda: self.get("/v2/health/ready") == 200, "the gateway to be ready")

    def stop_server(self) -> None:
        if self.server is None:
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    def get(self, path: str) -> int:
        try:
            return httpx.get(self.base + path, timeout=5).status_code
        except httpx.TransportError:
            return 0

    def wait_until(self, condition: Any, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.server is not None and self.server.poll() is not None:
                raise DemoError(f"the gateway exited (code {self.server.returncode})")
            if time.monotonic() > deadline:
                raise DemoError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def infer(
        self,
        client: httpx.Client,
        X: np.ndarray,
        *,
        request_id: str,
        routing_key: str | None = None,
    ) -> httpx.Response:
        body = {
            "id": request_id,
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(X.shape),
                    "datatype": "FP32",
                    "data": X.ravel().tolist(),
                }
            ],
        }
        headers = {"X-Routing-Key": routing_key} if routing_key else {}
        r = client.post(f"/v2/models/{MODEL}/infer", json=body, headers=headers)
        if r.status_code != 200:
            raise DemoError(f"infer answered {r.status_code}: {r.text}")
        return r

    # -- the steps -----------------------------------------------------------------------------
    def register(self, data: DemoData) -> list[tuple[str, Any, dict[str, float]]]:
        self.out.rule("1. train and register")
        models = train_models(data)
        reg = Registry(self.registry_url)
        reference = data.X_train  # every training row: small data, keep it all
        description, model, metrics = models[0]
        mv = reg.register(
            MODEL,
            model,
            reference=reference,
            metrics=metrics,
            tags={"dataset": "sklearn.breast_cancer"},
        )
        self.out.print(
            f"{description}: holdout accuracy {metrics['accuracy']:.3f}, "
            f"AUC {metrics['auc']:.3f} -> registered as version {mv.version}"
        )
        self.cli("models", "list")
        self.cli("models", "show", MODEL, "1")
        return models

    def query(self, data: DemoData) -> None:
        self.out.rule("2. serve and query")
        self.start_server()
        X = data.X_test.to_numpy()[:2].astype(np.float32)
        with httpx.Client(base_url=self.base, timeout=30) as client:
            r = self.infer(client, X, request_id="demo-oip")
            outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
            self.out.print(
                f"OIP V2  /v2/models/{MODEL}/infer -> predict {outputs['predict']}, "
                f"predict_proba {np.round(outputs['predict_proba'], 4).tolist()} "
                f"(X-Model-Version {r.headers['x-model-version']}, "
                f"X-Route {r.headers['x-route']})",
                highlight=False,
            )
            records = [dict(zip(data.feature_names, map(float, row), strict=True)) for row in X]
            r = client.post(f"/v1/models/{MODEL}:predict", json={"instances": records})
            self.out.print(f"KServe V1 :predict (records) -> {r.json()}", highlight=False)
            body = {"dataframe_split": {"columns": data.feature_names, "data": X.tolist()}}
            r = client.post(f"/invocations?model={MODEL}", json=body)
            self.out.print(f"MLflow /invocations (dataframe_split) -> {r.json()}", highlight=False)

    def rollout(self, data: DemoData, models: list[tuple[str, Any, dict[str, float]]]) -> None:
        self.out.rule("3. canary, shadow, status, promote")
        reg = Registry(self.registry_url)
        reference = data.X_train
        for description, model, metrics in models[1:]:
            mv = reg.register(MODEL, model, reference=reference, metrics=metrics, parent_version=1)
            self.out.print(
                f"{description}: holdout AUC {metrics['auc']:.3f} -> version "
                f"{mv.version} (takes no traffic yet)"
            )
        self.cli("rollout", "start", MODEL, "2", "--weight", "20")
        self.cli("rollout", "shadow", MODEL, "3", "--percent", "100")
        for v in (2, 3):
            self.wait_until(
                lambda v=v: self.get(f"/v2/models/{MODEL}/versions/{v}/ready") == 200,
                f"version {v} to be loaded",
            )
        X, _ = traffic(data, 400, drifted=False, seed=1)
        seen: Counter[str] = Counter()
        with httpx.Client(base_url=self.base, timeout=30) as client:
            for i, row in enumerate(X):
                r = self.infer(
                    client, row[None, :], request_id=f"rollout-{i}", routing_key=f"user-{i}"
                )
                seen[f"version {r.headers['x-model-version']} ({r.headers['x-route']})"] += 1
        self.out.print(f"400 requests with distinct X-Routing-Key: {dict(seen)}", highlight=False)
        self.wait_until(self._shadow_logged, "the shadow's answers to reach the log")
        self.cli("rollout", "status", MODEL)
        self.cli("rollout", "promote", MODEL)
        self.cli("rollout", "shadow", MODEL, "--off")
        self.wait_until(lambda: self._champion_serves(2), "the promoted version to serve")

    def _shadow_logged(self) -> bool:
        files = list((self.home / "logs" / "predictions").rglob("*.parquet"))
        if not files:
            return False
        import polars as pl

        routes = pl.concat([pl.read_parquet(f, columns=["route"]) for f in files])["route"]
        return int((routes == "shadow").sum()) >= 400

    def _champion_serves(self, version: int) -> bool:
        r = httpx.post(
            f"{self.base}/v2/models/{MODEL}/infer",
            timeout=5,
            json={
                "inputs": [
                    {"name": "input-0", "shape": [1, 30], "datatype": "FP32", "data": [1.0] * 30}
                ]
            },
        )
        return r.status_code == 200 and r.headers.get("x-model-version") == str(version)

    def drift(self, data: DemoData) -> None:
        self.out.rule("4. drift half way, feedback, monitor, alert, report")
        with httpx.Client(base_url=self.base, timeout=30) as client:
            for phase, rows, drifted in (
                ("clean", CLEAN_ROWS, False),
                ("drifted", DRIFTED_ROWS, True),
            ):
                X, y = traffic(data, rows, drifted=drifted, seed=2 if drifted else 3)
                labels = []
                for start in range(0, rows, ROWS_PER_REQUEST):
                    rid = f"{phase}-{start}"
                    self.infer(client, X[start : start + ROWS_PER_REQUEST], request_id=rid)
                    labels += [
                        {"id": f"{rid}/{i}", "label": int(label)}
                        for i, label in enumerate(y[start : start + ROWS_PER_REQUEST])
                    ]
                r = client.post(f"/v2/models/{MODEL}/feedback", json={"labels": labels})
                if r.status_code != 200:
                    raise DemoError(f"feedback answered {r.status_code}: {r.text}")
                note = f" (mean_/worst_ features x{DRIFT_FACTOR})" if drifted else ""
                self.out.print(f"sent {rows} {phase} rows{note} and their ground truth")
        self.out.print("stopping the gateway (SIGTERM: in-flight requests finish, log flushed)")
        self.stop_server()

        def on_alert(ok: bool, headers: dict[str, str], payload: dict[str, Any]) -> None:
            data_ = payload.get("data", {})
            window = data_.get("window") or {}
            drifted = list(data_.get("drifted_features") or [])
            if payload.get("type") == "model.performance.degraded":
                perf = data_.get("performance") or {}
                why = (
                    f"DDM flagged the error stream; window accuracy "
                    f"{perf.get('accuracy', float('nan')):.3f} "
                    f"on {perf.get('labelled_rows')} labels"
                )
            else:
                prediction = data_.get("prediction") or {}
                why = (
                    f"dataset drift {data_.get('dataset_drift')} (share drifted "
                    f"{data_.get('share_drifted', 0):.2f}), prediction drift "
                    f"{prediction.get('drifted')}; {len(drifted)} features drifted, e.g. "
                    f"{', '.join(drifted[:4])}"
                )
            self.out.print(
                f"[bold]webhook received[/] {payload.get('type')} for {data_.get('model')} "
                f"v{data_.get('version')} window {window.get('seq')} ({window.get('rows')} rows): "
                f"signature {'valid' if ok else 'INVALID'} "
                f"(webhook-id {headers.get('webhook-id')}); {why}",
                highlight=False,
            )

        with WebhookReceiver(self.secret, on_alert) as receiver:
            env = {"MLGATE_WEBHOOK_URL": receiver.url, "MLGATE_WEBHOOK_SECRET": self.secret}
            summary = json.loads(self.cli("monitor", "run", "--once", env=env, show=False))
            self.out.print(
                f"$ mlgate monitor run --once -> {summary.get('windows', summary)} "
                "windows computed",
                highlight=False,
            )
            if not receiver.received:
                raise DemoError("the monitor sent no alert for the drifted traffic")
        self.cli("monitor", "report", MODEL)
        report = self.home / "drift-report.html"
        self.cli("monitor", "report", MODEL, "--format", "html", "--out", str(report), show=False)
        self.out.print(f"HTML drift report written to {report}", highlight=False)


def run_demo(home: Path, out: Console) -> Path:
    """Run the whole tour in ``home`` (emptied first). Returns the HTML report's path."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / "mlgate.toml").write_text(DEMO_CONFIG)
    demo = Demo(home, out)
    data = load_data()
    try:
        models = demo.register(data)
        demo.query(data)
        demo.rollout(data, models)
        demo.drift(data)
    finally:
        demo.stop_server()
    return home / "drift-report.html"
