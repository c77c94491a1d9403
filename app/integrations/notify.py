"""GOV.UK Notify delivery for outbox messages.

Notify sends from templates. The service uses one e-mail template whose subject is
((subject)) and whose body is ((body)); its id is NOTIFY_EMAIL_TEMPLATE_ID.
"""

from __future__ import annotations

from notifications_python_client.errors import HTTPError
from notifications_python_client.notifications import NotificationsAPIClient

from app.domain.outbox import OutboxMessage, mark_failed, mark_sent


def deliver(message: OutboxMessage, *, api_key: str, template_id: str, client=None) -> bool:
    client = client or NotificationsAPIClient(api_key)
    try:
        response = client.send_email_notification(
            email_address=message.to_address,
            template_id=template_id,
            personalisation={"subject": message.subject, "body": message.body},
            reference=f"outbox-{message.id}",
        )
    except HTTPError as exc:
        mark_failed(message, f"Notify refused the message: {exc.status_code} {exc.message}")
        return False
    except Exception as exc:  # network failures: recorded, retried by the queue
        mark_failed(message, f"Could not reach Notify: {exc}")
        raise
    mark_sent(message, str(response.get("id", "")))
    return True
