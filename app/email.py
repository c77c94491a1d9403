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
