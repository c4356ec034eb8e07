"""Alert messages on the wire: Standard Webhooks signing and the Alertmanager format.

Standard Webhooks (https://www.standardwebhooks.com/): headers ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">``; the secret is ``whsec_`` + base64 of the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

SECRET_PREFIX = "whsec_"


class WebhookSecretError(ValueError):
    """A secret that is not ``whsec_`` + base64."""


def secret_key(secret: str) -> bytes:
    """HMAC key bytes of a Standard Webhooks secret.

    >>> secret_key("whsec_" + base64.b64encode(b"key").decode())
    b'key'
    """
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(
            f"webhook secret: expected 'whsec_' + base64, got a value starting {secret[:6]!r}"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        detail = f"webhook secret: the part after 'whsec_' is not base64: {exc}"
        raise WebhookSecretError(detail) from exc
    if not key:
        raise WebhookSecretError("webhook secret: empty key after 'whsec_'")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(
    secret: str, headers: dict[str, str], body: bytes, *, now: float, tolerance_s: float = 300
) -> bool:
    """Check a received message as a Standard Webhooks receiver would."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        ts = int(lower["webhook-timestamp"])
        given = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    return any(
        hmac.compare_digest(expected, s.split(",", 1)[1]) for s in given if s.startswith("v1,")
    )


def headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    out = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret:
        out["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return out


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def standard_body(event_type: str, data: dict[str, Any], *, created_at: float) -> bytes:
    """``{"type", "timestamp", "data"}`` as the convention recommends."""
    payload = {"type": event_type, "timestamp": iso(created_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


ALERT_NAMES = {
    "model.drift.detected": "MlgateModelDrift",
    "model.drift.resolved": "MlgateModelDrift",
    "model.performance.degraded": "MlgateModelPerformanceDegraded",
}


def alertmanager_body(event_type: str, data: dict[str, Any], *, created_at: float) -> bytes:
    """One alert for Alertmanager's ``POST /api/v2/alerts``; resolved alerts carry endsAt."""
    labels = {
        "alertname": ALERT_NAMES[event_type],
        "model": str(data.get("model")),
        "version": str(data.get("version")),
        "route": str(data.get("route")),
        "severity": "warning",
        "source": "mlgate",
    }
    drifted = ", ".join(data.get("drifted_features") or []) or "none"
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": f"{event_type}: model {labels['model']} version {labels['version']}",
            "description": f"share drifted {data.get('share_drifted')}; features: {drifted}",
            "event_type": event_type,
        },
        "startsAt": iso(data.get("started_at") or created_at),
    }
    if event_type == "model.drift.resolved":
        alert["endsAt"] = iso(created_at)
    return json.dumps([alert], separators=(",", ":"), default=str).encode()
