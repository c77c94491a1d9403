"""Background jobs, run by the worker (`huey_consumer app.jobs.huey`, see Procfile).

The queue is a SQLite file by default and Redis when REDIS_URL is set. Jobs open their
own database connection from DATABASE_URL.
"""

from __future__ import annotations

import os

from dotenv import load_dotenv
from huey import RedisHuey, SqliteHuey, crontab

from app.config import load_config

load_dotenv()
_config = load_config()


def _make_huey():
    if _config.REDIS_URL:
        return RedisHuey("ims", url=_config.REDIS_URL, immediate=_config.HUEY_IMMEDIATE)
    path = _config.HUEY_SQLITE_PATH
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return SqliteHuey("ims", filename=path, immediate=_config.HUEY_IMMEDIATE)


huey = _make_huey()


def _bind():
    from app.db import bind_database, database

    if database.obj is None:
        bind_database(_config.DATABASE_URL)


@huey.task(retries=5, retry_delay=60)
def deliver_email(message_id: int) -> None:
    """Send one outbox message through GOV.UK Notify."""
    _bind()
    from app.domain.outbox import OutboxMessage
    from app.integrations.notify import deliver

    message = OutboxMessage.get_or_none(OutboxMessage.id == message_id)
    if message is None or message.status == "sent":
        return  # idempotent: a retried job never sends twice
    deliver(message, api_key=_config.NOTIFY_API_KEY, template_id=_config.NOTIFY_EMAIL_TEMPLATE_ID)


_gateway = None


def pay_gateway():
    """One PayGateway per worker process (clients keep their connections open)."""
    global _gateway
    if _gateway is None:
        from app.integrations.govuk_pay.accounts import PayGateway

        _gateway = PayGateway(_config.GOVUK_PAY_ACCOUNTS, _config.GOVUK_PAY_BASE_URL)
    return _gateway


def _client_for(name: str):
    # In the web process (and in tests, where jobs run at once) use the app's gateway.
    try:
        from flask import current_app

        return current_app.extensions["govuk_pay"].client(name)
    except RuntimeError:  # no app context: a worker process
        return pay_gateway().client(name)


def _queue_receipt(message) -> None:
    if message is None or not (_config.NOTIFY_API_KEY and _config.NOTIFY_EMAIL_TEMPLATE_ID):
        return
    from app.domain.outbox import OutboxMessage

    OutboxMessage.update(status="queued").where(
        (OutboxMessage.id == message.id) & (OutboxMessage.status == "stored")
    ).execute()
    deliver_email(message.id)


@huey.task(retries=3, retry_delay=30)
def process_govuk_pay_webhook(message_id: int) -> str:
    """Apply one stored webhook message by re-reading its payment from GOV.UK Pay."""
    _bind()
    from app.domain.payments import WebhookMessage, process_webhook

    message = WebhookMessage.get_or_none(WebhookMessage.id == message_id)
    if message is None:
        return "missing"
    outcome = process_webhook(message, _client_for, _queue_receipt)
    return outcome


@huey.periodic_task(crontab(minute="*"))
def recover_govuk_pay_payments() -> dict:
    """Every minute: re-check the unfinished payments that are due (see payments._check_delay)."""
    _bind()
    from app.domain.payments import recover_payments

    report = recover_payments(_client_for, on_receipt=_queue_receipt)
    from app.domain.refunds import carry_out, open_card_refunds

    # Card refunds GOV.UK Pay has not finished yet (live refunds can stay "submitted" for days).
    for refund in list(open_card_refunds()):
        carry_out(refund, _client_for)
    return {"checked": report.checked, "finished": report.finished, "errors": report.errors}


@huey.task()
def run_import(batch_id: int, directory: str) -> str:
    """Post one confirmed import batch: all of it in one transaction, or none (app/domain/imports/batches.py).

    No automatic retries: a failed import says why on its page and a person chooses to run it again.
    """
    _bind()
    from app.domain.imports.batches import run_batch

    return run_batch(batch_id, directory=directory).status


@huey.periodic_task(crontab(minute="*"))
def run_scheduled_exports() -> dict:
    """Every minute: run each daily export template whose time has come today (once a day each)."""
    _bind()
    from app.domain.exports.runs import run_due_exports

    return run_due_exports()
