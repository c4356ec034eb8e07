"""Alert state per stream, the durable outbox and the cursor over the registry's events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.store.base import Tables
from monitor.store.rows import (
    AlertState,
    DueMessage,
    EndpointCounts,
    NewestMessage,
    OutboxMessage,
)

if TYPE_CHECKING:
    from monitor.store.windows import Key


class AlertTables(Tables):
    # -- alert state ------------------------------------------------------------------------
    def alert_states(self) -> dict[Key, AlertState]:
        rows = self.con.execute(
            "SELECT model, version, route, drifting, degraded FROM alert_state"
        ).fetchall()
        return {(m, int(v), r): AlertState(bool(d), bool(g)) for m, v, r, d, g in rows}

    def set_alert_states(self, states: dict[Key, AlertState]) -> None:
        if states:
            self.con.executemany(
                "INSERT OR REPLACE INTO alert_state VALUES (?, ?, ?, ?, ?)",
                [(*key, s.drifting, s.degraded) for key, s in states.items()],
            )

    # -- outbox -----------------------------------------------------------------------------
    def outbox_messages(self, model: str | None = None) -> list[OutboxMessage]:
        """The outbox's messages, oldest first; only ``model``'s if given."""
        where, args = (" WHERE subject LIKE ?", [f"%|{model}|%"]) if model else ("", [])
        rows = self.con.execute(
            f"SELECT {', '.join(OutboxMessage._fields)} FROM outbox{where} ORDER BY seq", args
        ).fetchall()
        return [OutboxMessage(*r) for r in rows]

    def outbox_has(self, msg_id: str) -> bool:
        return (
            self.con.execute("SELECT 1 FROM outbox WHERE id = ?", [msg_id]).fetchone() is not None
        )

    def outbox_sent_since(self, endpoint: str, subject: str, since: float) -> bool:
        """Whether a message of ``subject`` went (or is going) to ``endpoint`` since then."""
        row = self.con.execute(
            "SELECT 1 FROM outbox WHERE endpoint = ? AND status <> 'suppressed'"
            " AND subject = ? AND created_at > ?",
            [endpoint, subject, since],
        ).fetchone()
        return row is not None

    def outbox_add(
        self,
        *,
        msg_id: str,
        endpoint: str,
        event_type: str,
        fingerprint: str,
        subject: str,
        body: str,
        now: float,
        status: str,
        alert_id: str,
    ) -> None:
        self.con.execute(
            "INSERT INTO outbox SELECT ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL, NULL,"
            " coalesce(max(seq), 0) + 1, ? FROM outbox",
            [msg_id, endpoint, event_type, fingerprint, subject, body, now, now, status,
             alert_id],
        )  # fmt: skip

    def outbox_due(self, now: float) -> list[DueMessage]:
        """Pending messages whose next attempt is due, in queue order."""
        rows = self.con.execute(
            "SELECT id, endpoint, body, created_at, attempts, coalesce(alert_id, id) FROM outbox"
            " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY seq",
            [now],
        ).fetchall()
        return [DueMessage(*r) for r in rows]

    def outbox_delivered(self, msg_id: str, now: float) -> None:
        self.con.execute(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
            " delivered_at = ?, last_error = NULL WHERE id = ?",
            [now, msg_id],
        )

    def outbox_failed(self, msg_id: str, attempts: int, error: str | None) -> None:
        self.con.execute(
            "UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
            [attempts, error, msg_id],
        )

    def outbox_retry(self, msg_id: str, attempts: int, at: float, error: str | None) -> None:
        self.con.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            [attempts, at, error, msg_id],
        )

    def outbox_pending(self) -> int:
        row = self.con.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
        return int(row[0]) if row else 0

    def outbox_next_attempt(self, msg_id: str) -> float | None:
        row = self.con.execute(
            "SELECT next_attempt_at FROM outbox WHERE id = ?", [msg_id]
        ).fetchone()
        return float(row[0]) if row else None

    # -- registry event cursor --------------------------------------------------------------
    def event_cursor(self, model: str) -> int:
        """How many lines of ``model``'s registry trail were already looked at."""
        row = self.con.execute(
            "SELECT position FROM event_cursor WHERE model = ?", [model]
        ).fetchone()
        return int(row[0]) if row else 0

    def set_event_cursor(self, model: str, position: int) -> None:
        self.con.execute("INSERT OR REPLACE INTO event_cursor VALUES (?, ?)", [model, position])

    # -- dashboards -------------------------------------------------------------------------
    def latest_outbox(self) -> dict[str, tuple[str, float, str]]:
        """Per model, its newest queued message: ``(event_type, created_at, status)``."""
        rows = self.con.execute(
            "SELECT split_part(subject, '|', 2) AS model, event_type, created_at, status"
            " FROM outbox QUALIFY row_number() OVER (PARTITION BY model ORDER BY seq DESC) = 1"
        ).fetchall()
        return {str(m): (str(k), float(c), str(s)) for m, k, c, s in rows}

    def newest_messages(self, limit: int) -> list[NewestMessage]:
        """The newest ``limit`` messages, newest first, with the model they are about."""
        rows = self.con.execute(
            "SELECT id, endpoint, event_type, split_part(subject, '|', 2),"
            " split_part(subject, '|', 3), status, attempts, last_error, created_at,"
            " delivered_at, next_attempt_at FROM outbox ORDER BY seq DESC LIMIT ?",
            [limit],
        ).fetchall()
        return [NewestMessage(*r) for r in rows]

    def endpoint_counts(self) -> list[EndpointCounts]:
        """Per endpoint: messages by status, the last error and the last delivery."""
        rows = self.con.execute(
            "SELECT endpoint,"
            " count(*) FILTER (WHERE status = 'delivered'),"
            " count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE status = 'failed'),"
            " count(*) FILTER (WHERE status = 'suppressed'),"
            " arg_max(last_error, seq) FILTER (WHERE last_error IS NOT NULL),"
            " max(delivered_at)"
            " FROM outbox GROUP BY endpoint ORDER BY endpoint"
        ).fetchall()
        return [EndpointCounts(*r) for r in rows]
