"""Locust load test for any Open Inference Protocol V2 server (mlgate, MLServer, Triton, KServe).

Each simulated user POSTs ``/v2/models/<model>/infer`` with one row of random features (and,
when ``MLGATE_BENCH_BIG_PERCENT`` > 0, also ``MLGATE_BENCH_BIG_ROWS``-row bodies) as fast as it
gets answers. The input tensors (names, datatypes, widths) are the ones the model's metadata
(``GET /v2/models/<model>``) declares, so the same file drives mlgate, MLServer, Triton or KServe.
Settings come from environment variables:

- ``MLGATE_BENCH_HOST`` base URL (default ``http://127.0.0.1:8080``; ``--host`` wins)
- ``MLGATE_BENCH_MODEL`` model name (default ``rf``)
- ``MLGATE_BENCH_FEATURES`` and ``MLGATE_BENCH_INPUT``: features per row and input name, used
  only when the server answers no metadata (defaults 32 and ``input-0``)
- ``MLGATE_BENCH_BIG_ROWS`` rows in a big body (default 64); ``MLGATE_BENCH_BIG_PERCENT`` the
  share of requests, in percent, that carry a big body (default 0: none)
- ``MLGATE_PREDICT_TOKEN`` bearer token, when the gateway requires one

    MLGATE_BENCH_HOST=http://127.0.0.1:8080 .venv/bin/locust -f benchmarks/locustfile.py \\
        --headless -u 64 -r 16 -t 30s
"""

from __future__ import annotations

import os
from typing import Any

from locust import FastHttpUser, constant, task

from benchmarks.oip_inputs import make_bodies, specs_from_metadata


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
        specs = specs_from_metadata(self._metadata())
        seed = id(self) % 2**32
        self.path = f"/v2/models/{self.model}/infer"
        self.small = make_bodies(specs, 1, 64, seed)
        self.big = make_bodies(specs, self.big_rows, 8, seed + 1) if self.big_percent else []
        self.sent = 0

    def _metadata(self) -> dict[str, Any] | None:
        with self.client.get(
            f"/v2/models/{self.model}", headers=self.headers, name="metadata", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.success()  # no metadata: fall back to the environment's input
                return None
            try:
                meta = resp.json()
            except ValueError:
                return None
            return meta if isinstance(meta, dict) else None

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
