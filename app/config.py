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
        # Payment file imports (app/domain/imports/batches.py): size limit, stored files, dead-worker timeout.
        self.IMPORT_MAX_BYTES = _int("IMPORT_MAX_BYTES", 200 * 1024 * 1024)
        self.IMPORT_STORAGE_DIR = os.environ.get("IMPORT_STORAGE_DIR", "") or "instance/imports"
        self.IMPORT_STALE_SECONDS = _int("IMPORT_STALE_SECONDS", 120)
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
        # GOV.UK Pay: one API key per account (GOVUK_PAY_API_KEY, GOVUK_PAY_API_KEY_<NAME>), see
        # app/integrations/govuk_pay/accounts.py. The base URL points at the emulator in the demo.
        from app.integrations.govuk_pay.accounts import accounts_from_environment
        from app.integrations.govuk_pay.client import DEFAULT_BASE_URL

        self.GOVUK_PAY_BASE_URL = os.environ.get("GOVUK_PAY_BASE_URL", "") or DEFAULT_BASE_URL
        self.GOVUK_PAY_ACCOUNTS = accounts_from_environment()
        # Where GOV.UK Pay's card pages are: the citizen's form posts are redirected there,
        # so the Content Security Policy's form-action must allow it on the pages that do so.
        self.GOVUK_PAY_PAGE_ORIGIN = (
            os.environ.get("GOVUK_PAY_PAGE_ORIGIN", "") or "https://www.payments.service.gov.uk"
        )
        # The address citizens reach this service at, for GOV.UK Pay's return URL
        # (blank: taken from the request, which is right unless a proxy rewrites the host).
        self.PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "").rstrip("/")
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


# (account name, API key, webhook secret) used by the tests' emulator and app alike.
TEST_PAY_ACCOUNTS = (
    ("default", "api_test_default_0123456789abcdefghijklmnop", "webhook-secret-default-0123456789"),
    ("parking", "api_test_parking_0123456789abcdefghijklmnop", "webhook-secret-parking-0123456789"),
)


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
        # Tests talk to the built-in emulator in-process (tests/govuk_pay_emulator.py).
        from app.integrations.govuk_pay.accounts import PayAccount

        self.GOVUK_PAY_BASE_URL = "http://govuk-pay.test"
        self.GOVUK_PAY_PAGE_ORIGIN = "http://govuk-pay.test"
        self.GOVUK_PAY_ACCOUNTS = {name: PayAccount(name, key, secret) for name, key, secret in TEST_PAY_ACCOUNTS}
        import tempfile

        # Each test session keeps its uploaded import files apart from a developer's own.
        self.IMPORT_STORAGE_DIR = os.path.join(tempfile.gettempdir(), f"ims-test-imports-{os.getpid()}")


CONFIGS = {"development": DevelopmentConfig, "production": Config, "testing": TestingConfig}


def load_config(name: str | None = None) -> Config:
    name = name or os.environ.get("IMS_ENV", "production")
    if name not in CONFIGS:
        raise RuntimeError(f"IMS_ENV must be one of {', '.join(CONFIGS)}")
    return CONFIGS[name]()
