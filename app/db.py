"""Database binding shared by every model.

Models bind to `database`, a proxy that `create_app()` (or a CLI command, or a test)
initialises from DATABASE_URL. SQLite runs in WAL mode with foreign keys on;
PostgreSQL uses psycopg 3.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from peewee import DatabaseProxy, Model
from playhouse.db_url import connect

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "synchronous": "normal",
    "cache_size": -32_000,
}


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


def open_database(url: str):
    """Return a peewee Database for `url` (sqlite:///path or postgresql://...)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # peewee still gives each thread its own connection. A bulk posting lends its connection to one
        # helper thread that writes while the posting thread prepares the next rows
        # (ledger._BackgroundWrites); SQLite serialises calls on a connection (threadsafety 3).
        return connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    if url.startswith(("postgresql://", "postgres://")):
        return connect(url)
    raise ValueError(f"Unsupported DATABASE_URL scheme: {url.split(':', 1)[0]}")


def bind_database(url: str):
    db = open_database(url)
    database.initialize(db)
    return db


def is_postgres() -> bool:
    return database.obj is not None and type(database.obj).__name__.startswith("Postgres")


def utcnow() -> dt.datetime:
    """Naive UTC: every timestamp is stored in UTC and shown in Europe/London."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
