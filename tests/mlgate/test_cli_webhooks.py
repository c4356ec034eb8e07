"""``mlgate webhooks listen``: a real receiver process that verifies Standard Webhooks
signatures, answers 401 to a forged message, prints what arrives and stops after --count."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from monitor.alerts.webhooks import headers as signed_headers
from tests.helpers import free_port

CLI = [sys.executable, "-P", "-c", "from mlgate.cli import main; main()"]


def test_secret_is_a_usable_standard_webhooks_secret() -> None:
    out = subprocess.run([*CLI, "webhooks", "secret"], capture_output=True, text=True, timeout=60)
    secret = out.stdout.strip()
    assert out.returncode == 0 and secret.startswith("whsec_")
    signed_headers(secret, "msg_1", int(time.time()), b"{}")  # accepted by the signer


def test_listen_verifies_and_prints_each_alert() -> None:
    secret = subprocess.run([*CLI, "webhooks", "secret"], capture_output=True, text=True,
                            timeout=60).stdout.strip()  # fmt: skip
    port = free_port()
    listener = subprocess.Popen(
        [*CLI, "webhooks", "listen", "--port", str(port), "--secret", secret, "--count", "2",
         "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/hook"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and listener.poll() is None
                time.sleep(0.1)
        body = json.dumps({"type": "model.drift.detected",
                           "data": {"model": "churn", "version": 2}}).encode()  # fmt: skip
        now = int(time.time())
        good = httpx.post(url, content=body, headers=signed_headers(secret, "msg_a", now, body))
        assert good.status_code == 204
        forged = signed_headers(secret, "msg_b", now, body)
        bad = httpx.post(url, content=body.replace(b"churn", b"other"), headers=forged)
        assert bad.status_code == 401
        unsigned = httpx.post(url, content=body, headers={"webhook-id": "msg_c"})
        assert unsigned.status_code == 401
        again = httpx.post(url, content=body, headers=signed_headers(secret, "msg_d", now, body))
        assert again.status_code == 204
        out, _ = listener.communicate(timeout=30)
    finally:
        listener.kill() if listener.poll() is None else None
    assert listener.returncode == 0  # stopped by --count 2 (two verified messages)
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["verified"]) for r in records] == [
        ("msg_a", True), ("msg_b", False), ("msg_c", False), ("msg_d", True)
    ]  # fmt: skip
    assert records[0]["payload"]["data"]["model"] == "churn"


def test_bad_secret_and_busy_port_are_one_line_errors() -> None:
    bad = subprocess.run([*CLI, "webhooks", "listen", "--secret", "nope", "--port", "0"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "whsec_" in bad.stderr
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = subprocess.run([*CLI, "webhooks", "listen", "--port", str(sock.getsockname()[1])],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert busy.returncode == 1 and "cannot listen" in busy.stderr
    assert "Traceback" not in busy.stderr
