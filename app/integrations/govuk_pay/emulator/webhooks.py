"""Webhooks as GOV.UK Pay sends them: signed JSON, at least once, unordered, retried on a schedule.

Each delivery is queued in the store when a payment changes state and sent by
`deliver_due()` (the background thread calls it every second; tests call it themselves).
Any 2xx answer is success; anything else (or no answer) is retried after each interval of the
retry schedule in turn and abandoned after the last.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.integrations.govuk_pay.emulator.resources import iso_ms
from app.integrations.govuk_pay.emulator.settings import Account, Clock, WebhookSender
from app.integrations.govuk_pay.emulator.store import Store, stamp

log = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_id(length: int = 26) -> str:
    """An opaque lower-case alphanumeric id, like GOV.UK Pay's payment_id and refund_id."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def sign(body: bytes, secret: str) -> str:
    """Pay-Signature: lower-case hex HMAC-SHA256 of the raw body bytes, keyed with the signing secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookOptions:
    duplicate: bool = False
    reorder: bool = False
    delay: timedelta = timedelta(0)


class Webhooks:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        sender: WebhookSender,
        retry_schedule: tuple[timedelta, ...],
        options: WebhookOptions,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sender = sender
        self.retry_schedule = retry_schedule
        self.options = options
        self._send_lock = threading.Lock()

    def queue(self, account: Account, event_type: str, payment_id: str, resource: dict[str, Any], at) -> None:
        if not account.webhook_url or not account.webhook_secret:
            return
        body = {
            "webhook_message_id": new_id(),
            "api_version": 1,
            "created_date": iso_ms(at),
            "resource_id": payment_id,
            "resource_type": "payment",
            "event_type": event_type,
            "resource": resource,
        }
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        now = self.clock.now()
        self.store.queue_webhook(
            {
                "message_id": body["webhook_message_id"],
                "account": account.name,
                "url": account.webhook_url,
                "event_type": event_type,
                "resource_id": payment_id,
                "body": raw,
                "signature": sign(raw, account.webhook_secret),
                "created_at": stamp(now),
                "due_at": stamp(now + self.options.delay),
            }
        )

    def deliver_due(self) -> list[dict[str, Any]]:
        """Send every delivery due now; returns one record per attempt made."""
        with self._send_lock:
            now = self.clock.now()
            due = self.store.claim_due_webhooks(stamp(now))
            if self.options.reorder:
                due.reverse()
            made = []
            for delivery in due:
                sends = 2 if self.options.duplicate else 1
                attempts = list(delivery["attempts"])
                delivered = False
                for _ in range(sends):
                    status, error = self._send(delivery)
                    attempts.append({"at": stamp(now), "status": status, "error": error})
                    made.append({"id": delivery["id"], "event_type": delivery["event_type"], "status": status})
                    delivered = delivered or (status is not None and 200 <= status < 300)
                failures = sum(1 for a in attempts if not (a["status"] and 200 <= a["status"] < 300))
                if delivered:
                    state, due_at = "delivered", now
                elif failures <= len(self.retry_schedule):
                    state, due_at = "pending", now + self.retry_schedule[failures - 1]
                else:
                    state, due_at = "abandoned", now
                self.store.finish_webhook(delivery["id"], state, stamp(due_at), attempts)
            return made

    def _send(self, delivery: dict[str, Any]) -> tuple[int | None, str | None]:
        headers = {
            "Content-Type": "application/json",
            "Pay-Signature": delivery["signature"],
            "User-Agent": "GOV.UK Pay emulator webhooks",
        }
        try:
            return int(self.sender(delivery["url"], delivery["body"], headers)), None
        except Exception as error:  # a refused connection or timeout is a failed attempt, retried later
            log.info("Webhook %s to %s failed: %s", delivery["message_id"], delivery["url"], error)
            return None, f"{type(error).__name__}: {error}"


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    """A delivery as the control API and the fixtures report it."""
    return {
        "id": row["id"],
        "webhook_message_id": row["message_id"],
        "account": row["account"],
        "url": row["url"],
        "event_type": row["event_type"],
        "resource_id": row["resource_id"],
        "state": row["state"],
        "due_at": row["due_at"],
        "attempts": row["attempts"],
        "signature": row["signature"],
        "body": json.loads(row["body"]),
        "raw_body": row["body"].decode("utf-8"),
    }
