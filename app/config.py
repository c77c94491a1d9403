"""Settings, from environment variables only. `.env.example` documents every one.

A `.env` file in the project root is read at start-up (python-dotenv) so `make run`
works on a laptop; in production set real environment variables instead.
"""

from __future__ import annotations

import os
from datetime import timedelta


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


class Config:
    ENV_NAME = "production"
    TESTING = False

    def __init__(self) -> None:
        self.SECRET_KEY = os.environ.get("SECRET_KEY", "")
        self.DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///instance/ims.db")
        # Session cookie: signed, HttpOnly, SameSite=Lax, Secure unless explicitly off for plain-http local runs.
        self.SESSION_COOKIE_NAME = "ims_session"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
        self.SESSION_IDLE_MINUTES = _int("SESSION_IDLE_MINUTES", 30)
        self.PERMANENT_SESSION_LIFETIME = timedelta(hours=_int("SESSION_MAX_HOURS", 12))
        self.LOCKOUT_THRESHOLD = _int("LOCKOUT_THRESHOLD", 5)
        self.LOCKOUT_MINUTES = _int("LOCKOUT_MINUTES", 15)
        self.MAX_CONTENT_LENGTH = _int("MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
        self.WTF_CSRF_TIME_LIMIT = None  # tied to the session instead, which expires on inactivity
        self.WTF_CSRF_SSL_STRICT = _bool("WTF_CSRF_SSL_STRICT", True)
        # GOV.UK Notify: when both are set, e-mails are delivered through Notify; otherwise kept in the outbox.
        self.NOTIFY_API_KEY = os.environ.get("NOTIFY_API_KEY", "")
        self.NOTIFY_EMAIL_TEMPLATE_ID = os.environ.get("NOTIFY_EMAIL_TEMPLATE_ID", "")
        # Task queue: SQLite file by default, Redis when REDIS_URL is set.
        self.HUEY_SQLITE_PATH = os.environ.get("HUEY_SQLITE_PATH", "instance/huey.db")
        self.REDIS_URL = os.environ.get("REDIS_URL", "")
        self.HUEY_IMMEDIATE = _bool("HUEY_IMMEDIATE", False)
        # Demo mode shows the demo sign-ins and lets administrators read the outbox.
        self.DEMO_MODE = _bool("DEMO_MODE", False)
        # Behind a TLS-terminating proxy, trust X-Forwarded-Proto/For from this many proxies.
        self.PROXY_COUNT = _int("PROXY_COUNT", 0)

    def validate(self) -> None:
        if not self.SECRET_KEY or len(self.SECRET_KEY) < 32:
            raise RuntimeError(
                "SECRET_KEY must be set to a random value of at least 32 characters "
                "(`make run` writes one to .env for local use)"
            )


class DevelopmentConfig(Config):
    ENV_NAME = "development"

    def __init__(self) -> None:
        super().__init__()
        self.SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
        self.DEMO_MODE = _bool("DEMO_MODE", True)


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        self.SECRET_KEY = self.SECRET_KEY or "test-secret-key-that-is-long-enough-0123456789"
        self.SESSION_COOKIE_SECURE = False
        self.HUEY_IMMEDIATE = True
        self.DEMO_MODE = True
        self.NOTIFY_API_KEY = ""


CONFIGS = {"development": DevelopmentConfig, "production": Config, "testing": TestingConfig}


def load_config(name: str | None = None) -> Config:
    name = name or os.environ.get("IMS_ENV", "production")
    if name not in CONFIGS:
        raise RuntimeError(f"IMS_ENV must be one of {', '.join(CONFIGS)}")
    return CONFIGS[name]()
