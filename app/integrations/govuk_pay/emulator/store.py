"""The emulator's state in SQLite (stdlib sqlite3, never the app's database).

One connection per Store, shared by the server's threads under a lock; each change runs in a
`BEGIN IMMEDIATE` transaction so two processes on the same file (gunicorn workers) also take
turns. Documents (payments, refunds) are JSON; the columns beside them are what queries need.
Times are stored as fixed-width UTC strings so that text order is time order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_account ON payments (account, status);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_payment ON events (payment_id, id);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id TEXT NOT NULL,
    account TEXT NOT NULL,
    visible_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_account ON snapshots (account, payment_id, visible_at);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    account TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (account, idempotency_key)
);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    account TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_by_payment ON refunds (payment_id, created_at);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    account TEXT NOT NULL,
    url TEXT NOT NULL,
    event_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    body BLOB NOT NULL,
    signature TEXT NOT NULL,
    created_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (state, due_at);
"""
TABLES = ("payments", "events", "snapshots", "tokens", "idempotency", "refunds", "webhooks")


def stamp(when: datetime) -> str:
    """A fixed-width UTC text timestamp: text order is time order."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(SCHEMA)
            # A delivery that was being sent when the process stopped is sent again (at least once).
            self._conn.execute("UPDATE webhooks SET state = 'pending' WHERE state = 'sending'")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested calls join the outer transaction."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                self._depth -= 1
                if outer:
                    self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        with self.transaction() as conn:
            return conn.execute(sql, params)

    def reset(self) -> None:
        with self.transaction() as conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- payments ---------------------------------------------------------------------------

    def insert_payment(self, doc: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO payments (payment_id, account, created_at, status, data) VALUES (?, ?, ?, ?, ?)",
            (doc["payment_id"], doc["account"], doc["created_at"], doc["status"], json.dumps(doc)),
        )

    def save_payment(self, doc: dict[str, Any]) -> None:
        self.execute(
            "UPDATE payments SET status = ?, data = ? WHERE payment_id = ?",
            (doc["status"], json.dumps(doc), doc["payment_id"]),
        )

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT data FROM payments WHERE payment_id = ?", (payment_id,))
        return json.loads(rows[0]["data"]) if rows else None

    def payments(self, *, account: str | None = None, statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        sql, params = "SELECT data FROM payments WHERE 1 = 1", []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if statuses:
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(statuses)
        return [json.loads(row["data"]) for row in self.query(sql + " ORDER BY rowid", params)]

    def payment_ids_past(self, statuses: tuple[str, ...], created_before: str) -> list[str]:
        placeholders = ", ".join("?" for _ in statuses)
        rows = self.query(
            f"SELECT payment_id FROM payments WHERE status IN ({placeholders}) AND created_at <= ? ORDER BY rowid",  # noqa: S608
            [*statuses, created_before],
        )
        return [row["payment_id"] for row in rows]

    def refunded_payment_ids(self, status: str, created_before: str) -> list[str]:
        rows = self.query(
            "SELECT DISTINCT payment_id FROM refunds WHERE status = ? AND created_at <= ?", (status, created_before)
        )
        return [row["payment_id"] for row in rows]

    # --- events and search snapshots --------------------------------------------------------

    def add_event(self, payment_id: str, state: dict[str, Any], at: str) -> None:
        self.execute("INSERT INTO events (payment_id, state, at) VALUES (?, ?, ?)", (payment_id, json.dumps(state), at))

    def events(self, payment_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT state, at FROM events WHERE payment_id = ? ORDER BY id", (payment_id,))
        return [{"state": json.loads(row["state"]), "at": row["at"]} for row in rows]

    def add_snapshot(self, doc: dict[str, Any], visible_at: str) -> None:
        self.execute(
            "INSERT INTO snapshots (payment_id, account, visible_at, data) VALUES (?, ?, ?, ?)",
            (doc["payment_id"], doc["account"], visible_at, json.dumps(doc)),
        )

    def visible_payments(self, account: str, now: str) -> list[dict[str, Any]]:
        """What a search sees at `now`: each payment's latest snapshot that has become visible."""
        rows = self.query(
            """
            SELECT s.data FROM snapshots s
            WHERE s.account = ? AND s.id = (
                SELECT MAX(id) FROM snapshots t WHERE t.payment_id = s.payment_id AND t.visible_at <= ?
            )
            """,
            (account, now),
        )
        return [json.loads(row["data"]) for row in rows]

    # --- hosted page tokens -----------------------------------------------------------------

    def add_token(self, token: str, payment_id: str, at: str) -> None:
        self.execute("INSERT INTO tokens (token, payment_id, created_at) VALUES (?, ?, ?)", (token, payment_id, at))

    def token(self, token: str) -> dict[str, Any] | None:
        rows = self.query("SELECT token, payment_id, created_at, used_at FROM tokens WHERE token = ?", (token,))
        return dict(rows[0]) if rows else None

    def use_token(self, token: str, at: str) -> bool:
        """Mark a token used; False when it was already used (or never existed)."""
        cursor = self.execute("UPDATE tokens SET used_at = ? WHERE token = ? AND used_at IS NULL", (at, token))
        return cursor.rowcount == 1

    # --- idempotency keys -------------------------------------------------------------------

    def idempotency(self, account: str, key: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT body, payment_id, created_at FROM idempotency WHERE account = ? AND idempotency_key = ?",
            (account, key),
        )
        return dict(rows[0]) if rows else None

    def put_idempotency(self, account: str, key: str, body: str, payment_id: str, at: str) -> None:
        self.execute(
            "INSERT OR REPLACE INTO idempotency (account, idempotency_key, body, payment_id, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (account, key, body, payment_id, at),
        )

    # --- refunds ----------------------------------------------------------------------------

    def insert_refund(self, doc: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO refunds (refund_id, payment_id, account, created_at, status, data) VALUES (?, ?, ?, ?, ?, ?)",
            (doc["refund_id"], doc["payment_id"], doc["account"], doc["created_at"], doc["status"], json.dumps(doc)),
        )

    def save_refund(self, doc: dict[str, Any]) -> None:
        self.execute(
            "UPDATE refunds SET status = ?, data = ? WHERE refund_id = ?",
            (doc["status"], json.dumps(doc), doc["refund_id"]),
        )

    def refund(self, refund_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT data FROM refunds WHERE refund_id = ?", (refund_id,))
        return json.loads(rows[0]["data"]) if rows else None

    def refunds(self, *, payment_id: str | None = None, account: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT data FROM refunds WHERE 1 = 1", []
        if payment_id is not None:
            sql += " AND payment_id = ?"
            params.append(payment_id)
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        return [json.loads(row["data"]) for row in self.query(sql + " ORDER BY created_at, rowid", params)]

    # --- webhook deliveries -----------------------------------------------------------------

    def queue_webhook(self, row: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO webhooks (message_id, account, url, event_type, resource_id, body, signature, created_at, "
            "due_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                row["message_id"],
                row["account"],
                row["url"],
                row["event_type"],
                row["resource_id"],
                row["body"],
                row["signature"],
                row["created_at"],
                row["due_at"],
            ),
        )

    def claim_due_webhooks(self, now: str) -> list[dict[str, Any]]:
        """Take every pending delivery that is due, oldest first, so no other thread or process sends it too."""
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM webhooks WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id", (now,)
            ).fetchall()
            for row in rows:
                conn.execute("UPDATE webhooks SET state = 'sending' WHERE id = ?", (row["id"],))
        return [_webhook_row(row) for row in rows]

    def finish_webhook(self, delivery_id: int, state: str, due_at: str, attempts: list[dict[str, Any]]) -> None:
        self.execute(
            "UPDATE webhooks SET state = ?, due_at = ?, attempts = ? WHERE id = ?",
            (state, due_at, json.dumps(attempts), delivery_id),
        )

    def webhooks(self) -> list[dict[str, Any]]:
        return [_webhook_row(row) for row in self.query("SELECT * FROM webhooks ORDER BY id")]


def _webhook_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["attempts"] = json.loads(data["attempts"])
    body = data["body"]
    data["body"] = bytes(body) if not isinstance(body, bytes) else body
    return data
