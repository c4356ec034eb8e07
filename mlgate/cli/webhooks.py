"""``mlgate webhooks``: a local alert receiver that verifies signatures, and secrets for it.

``mlgate webhooks listen`` is what a user runs beside ``mlgate serve`` to watch alerts
arrive: it answers every POST, checks its Standard Webhooks signature (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) when it knows the secret, and prints one line
per message (or one JSON object per line with ``--format json``). A message whose signature
does not verify is answered 401, so the sender's outbox retries it and the mismatch is seen.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import typer

from mlgate.cli.common import FormatOption, OutputFormat, console, err_console, fail

group = typer.Typer(name="webhooks", help="Receive and verify alerts.", no_args_is_help=True)

MAX_BODY_BYTES = 1024 * 1024


def attach(app: typer.Typer) -> None:
    app.add_typer(group, name="webhooks")


@group.command("secret")
def new_secret() -> None:
    """Print a new signing secret (whsec_ + 32 random bytes, base64) for MLGATE_WEBHOOK_SECRET."""
    typer.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@group.command("listen")
def listen(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any).")] = 9000,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="MLGATE_WEBHOOK_SECRET",
            help="Signing secret (whsec_...); without it nothing is verified.",
        ),  # fmt: skip
    ] = None,
    count: Annotated[
        int,
        typer.Option("--count", min=0, help="Exit after this many accepted messages (0: never)."),
    ] = 0,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Receive alerts on http://HOST:PORT/ (any path), verify and print each one."""
    from monitor.alerts.webhooks import WebhookSecretError, secret_key, verify

    if secret is not None:
        try:
            secret_key(secret)
        except WebhookSecretError as exc:
            fail(str(exc))
    accepted = 0
    done = threading.Event()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            nonlocal accepted
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)
            headers = dict(self.headers.items())
            verified: bool | None = None
            if secret is not None:
                verified = verify(secret, headers, body, now=time.time())
            self._answer(401 if verified is False else 204)
            with lock:
                if verified is not False:
                    accepted += 1
                _print(self.path, headers, body, verified, output)
                if count and accepted >= count:
                    done.set()

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    server.daemon_threads = True
    bound = server.server_address[1]
    err_console.print(
        f"listening on http://{host}:{bound}/ "
        + ("(verifying signatures)" if secret else "(no --secret: signatures not checked)"),
        highlight=False,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done.wait() if count else thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def _print(path: str, headers: dict[str, str], body: bytes, verified: bool | None,
           output: OutputFormat) -> None:  # fmt: skip
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = body.decode(errors="replace")
    if output is OutputFormat.json:
        record = {"path": path, "id": lower.get("webhook-id"), "verified": verified,
                  "payload": payload}  # fmt: skip
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
        return
    mark = {
        True: "[green]verified[/]",
        False: "[red]BAD SIGNATURE[/]",
        None: "[yellow]unsigned?[/]",
    }
    kind = payload.get("type", "?") if isinstance(payload, dict) else "?"
    data = payload.get("data", {}) if isinstance(payload, dict) else {}
    if isinstance(data, dict) and isinstance(data.get("detail"), dict):
        data = {**data["detail"], **data}  # a forwarded registry event keeps its figures there
    model = data.get("model", "?") if isinstance(data, dict) else "?"
    version = data.get("version") if isinstance(data, dict) else None
    summary = _summary(data) if isinstance(data, dict) else ""
    console.print(
        f"{mark[verified]} {kind} model={model}"
        + (f" v{version}" if version is not None else "")
        + f" id={lower.get('webhook-id', '?')} {summary}"
    )


def _summary(data: dict[str, Any]) -> str:
    """The figures that say why an alert fired, as short ``key=value`` pairs."""
    keys = ("route", "share_drifted", "drifted_features", "detector", "run_id", "status",
            "phase", "weight", "decision", "reason")  # fmt: skip
    parts = []
    window = data.get("window")
    if isinstance(window, dict) and window.get("seq") is not None:
        parts.append(f"window={window['seq']} rows={window.get('rows')}")
    for key in keys:
        if data.get(key) is not None:
            value = data[key]
            if isinstance(value, list):
                value = ",".join(map(str, value[:6])) + ("…" if len(value) > 6 else "")
            parts.append(f"{key}={value}")
    return " ".join(parts)
