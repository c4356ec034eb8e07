"""Locust load test for any Open Inference Protocol V2 server (mlgate, MLServer, Triton, KServe).

Each simulated user POSTs ``/v2/models/<model>/infer`` with one FP32 row of random features
(and, when ``MLGATE_BENCH_BIG_PERCENT`` > 0, also ``MLGATE_BENCH_BIG_ROWS``-row bodies) as fast
as it gets answers. Settings come from environment variables:

- ``MLGATE_BENCH_HOST`` base URL (default ``http://127.0.0.1:8080``; ``--host`` wins)
- ``MLGATE_BENCH_MODEL`` model name (default ``rf``)
- ``MLGATE_BENCH_FEATURES`` features per row (default: read from the model's metadata, else 32)
- ``MLGATE_BENCH_BIG_ROWS`` rows in a big body (default 64); ``MLGATE_BENCH_BIG_PERCENT`` the
  share of requests, in percent, that carry a big body (default 0: none)
- ``MLGATE_PREDICT_TOKEN`` bearer token, when the gateway requires one

    MLGATE_BENCH_HOST=http://127.0.0.1:8080 .venv/bin/locust -f benchmarks/locustfile.py \\
        --headless -u 64 -r 16 -t 30s
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from locust import FastHttpUser, constant, task


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}: expected an integer, got {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name}: expected >= 0, got {value}")
    return value


def _features_from_metadata(meta: dict[str, Any]) -> int | None:
    """The feature count of the model's first input (``shape [-1, d]``), when it says."""
    inputs = meta.get("inputs") or []
    if inputs and isinstance(inputs[0], dict):
        shape = inputs[0].get("shape") or []
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
            return shape[1]
    return None


def _bodies(n_features: int, rows_per_body: int, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        rows = rng.standard_normal((rows_per_body, n_features)).astype(np.float32)
        tensor = {
            "name": "input-0",
            "shape": [rows_per_body, n_features],
            "datatype": "FP32",
            "data": [float(v) for v in rows.ravel()],
        }
        out.append(json.dumps({"inputs": [tensor]}, separators=(",", ":")))
    return out


class OipUser(FastHttpUser):
    """Sends OIP inference requests back to back (closed loop, no think time)."""

    host = os.environ.get("MLGATE_BENCH_HOST", "http://127.0.0.1:8080")
    wait_time = constant(0)

    model = os.environ.get("MLGATE_BENCH_MODEL", "rf")
    big_rows = _int_env("MLGATE_BENCH_BIG_ROWS", 64)
    big_percent = min(_int_env("MLGATE_BENCH_BIG_PERCENT", 0), 100)

    def on_start(self) -> None:
        self.headers = {"Content-Type": "application/json"}
        token = os.environ.get("MLGATE_PREDICT_TOKEN")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        n_features = _int_env("MLGATE_BENCH_FEATURES", 0) or self._metadata_features() or 32
        seed = id(self) % 2**32
        self.path = f"/v2/models/{self.model}/infer"
        self.small = _bodies(n_features, 1, 64, seed)
        self.big = _bodies(n_features, self.big_rows, 8, seed + 1) if self.big_percent else []
        self.sent = 0

    def _metadata_features(self) -> int | None:
        with self.client.get(
            f"/v2/models/{self.model}", headers=self.headers, name="metadata", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.success()  # metadata is optional here: fall back to the default width
                return None
            try:
                return _features_from_metadata(resp.json())
            except ValueError:
                return None

    def _post(self, body: str, name: str) -> None:
        with self.client.post(
            self.path, data=body, headers=self.headers, name=name, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
            elif b'"outputs"' not in (resp.content or b""):
                resp.failure("answer has no 'outputs'")

    @task
    def infer(self) -> None:
        self.sent += 1
        # deterministic mix: the running count of big bodies steps up big_percent times per 100
        if (
            self.big
            and (self.sent * self.big_percent) // 100 != ((self.sent - 1) * self.big_percent) // 100
        ):
            self._post(self.big[self.sent % len(self.big)], f"infer {self.big_rows} rows")
        else:
            self._post(self.small[self.sent % len(self.small)], "infer 1 row")
