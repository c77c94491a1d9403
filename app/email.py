"""Sending e-mail from the web layer: store in the outbox, then deliver if Notify is configured."""

from __future__ import annotations

from flask import current_app

from app.domain.outbox import OutboxMessage, store_email


def send_email(*, to: str, subject: str, body: str, purpose: str = "") -> OutboxMessage:
    config = current_app.config
    deliver = bool(config.get("NOTIFY_API_KEY") and config.get("NOTIFY_EMAIL_TEMPLATE_ID"))
    message = store_email(to=to, subject=subject, body=body, purpose=purpose, deliver=deliver)
    if deliver:
        from app.jobs import deliver_email

        deliver_email(message.id)
    return message


def queue_delivery(message: OutboxMessage | None) -> None:
    """Deliver a message the domain stored (e.g. a receipt) through Notify, if Notify is configured.

    The domain stores it inside its own transaction, so it exists exactly once; this only
    hands it to the queue afterwards. The job is idempotent, so a second call cannot send twice.
    """
    config = current_app.config
    if message is None or not (config.get("NOTIFY_API_KEY") and config.get("NOTIFY_EMAIL_TEMPLATE_ID")):
        return
    OutboxMessage.update(status="queued").where(
        (OutboxMessage.id == message.id) & (OutboxMessage.status == "stored")
    ).execute()
    from app.jobs import deliver_email

    deliver_email(message.id)
