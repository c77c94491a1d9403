"""Every e-mail the service sends is first stored here (the outbox).

By default that is all that happens: in the demo, administrators read the outbox in the
service. When a GOV.UK Notify key is configured, a queue job delivers each message
through Notify and records the outcome here.
"""

from __future__ import annotations

from peewee import CharField, DateTimeField, TextField

from app.db import BaseModel, utcnow

STATUSES = ("stored", "queued", "sent", "failed")


class OutboxMessage(BaseModel):
    created_at = DateTimeField(default=utcnow, index=True)
    to_address = CharField(max_length=320)
    subject = CharField(max_length=300)
    body = TextField()
    purpose = CharField(max_length=60, default="")  # e.g. "receipt", "account_created"
    status = CharField(max_length=10, default="stored")
    provider_id = CharField(max_length=80, default="")
    error = TextField(default="")
    sent_at = DateTimeField(null=True)


def store_email(*, to: str, subject: str, body: str, purpose: str = "", deliver: bool = False) -> OutboxMessage:
    return OutboxMessage.create(
        to_address=to.strip(), subject=subject, body=body, purpose=purpose, status="queued" if deliver else "stored"
    )


def mark_sent(message: OutboxMessage, provider_id: str) -> None:
    message.status, message.provider_id, message.sent_at, message.error = "sent", provider_id, utcnow(), ""
    message.save()


def mark_failed(message: OutboxMessage, error: str) -> None:
    message.status, message.error = "failed", error[:2000]
    message.save()
