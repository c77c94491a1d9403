"""Background jobs, run by the worker (`huey_consumer app.jobs.huey`, see Procfile).

The queue is a SQLite file by default and Redis when REDIS_URL is set. Jobs open their
own database connection from DATABASE_URL.
"""

from __future__ import annotations

import os

from dotenv import load_dotenv
from huey import RedisHuey, SqliteHuey

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
