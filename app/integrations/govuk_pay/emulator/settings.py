"""Settings of the GOV.UK Pay emulator, and the clock it reads the time from.

Everything comes from environment variables (`settings_from_environment`) or, in tests, from an
`EmulatorSettings` built in code. The clock is injectable so tests can fast-forward through the
90-minute expiry, the 120-hour capture deadline and the webhook retry schedule.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_DATABASE_PATH = "instance/govuk-pay-emulator.db"
# GOV.UK Pay retries a failed webhook after 60 s, 5 min, 1 h, 1 day and 2 days, then gives up.
DEFAULT_WEBHOOK_RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=60),
    timedelta(minutes=5),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=2),
)
WEBHOOK_TIMEOUT_SECONDS = 3.0

WebhookSender = Callable[[str, bytes, dict[str, str]], int]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def advance(self, delta: timedelta) -> None: ...


class SystemClock:
    """The real time plus an offset that tests (or POST /_emulator/clock) can move forward."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)


class FrozenClock:
    """A clock that only moves when told to: deterministic tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        self._lock = threading.Lock()
        if self._now.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


@dataclass(frozen=True)
class Account:
    """One GOV.UK Pay service account (a council has one per fund group or per fund)."""

    name: str
    webhook_secret: str = ""
    webhook_url: str = ""
    # MOTO (telephone) payments need GOV.UK Pay to switch them on for the account (P0196 otherwise).
    moto_enabled: bool = False


def httpx_webhook_sender(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST a webhook the way GOV.UK Pay does: raw JSON bytes, about 3 s timeout."""
    import httpx

    response = httpx.post(url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS)
    return response.status_code


@dataclass
class EmulatorSettings:
    # api key → account. Only api_test_… keys are accepted (create_app refuses anything else).
    accounts: dict[str, Account] = field(default_factory=dict)
    # Base for every link the API returns (self, next_url …); empty = the request's own host URL.
    public_url: str = ""
    # SQLite file that keeps payments across restarts; ":memory:" for tests.
    database_path: str = DEFAULT_DATABASE_PATH
    clock: Clock = field(default_factory=SystemClock)
    # Signs the hosted pages' session cookie and CSRF tokens.
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Per key, per second, per POST class (create, capture, other); 0 switches the limiter off.
    rate_limit_per_second: int = 15
    webhook_retry_schedule: tuple[timedelta, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_sender: WebhookSender = httpx_webhook_sender
    # At-least-once and unordered, on purpose: send every webhook twice, reverse each batch, hold them back.
    webhook_duplicate: bool = False
    webhook_reorder: bool = False
    webhook_delay: timedelta = timedelta(0)
    # Deliver due webhooks from a daemon thread every second (off in tests: they call deliver_due_webhooks()).
    background_webhooks: bool = False
    # The service shows its own failure pages: declined/cancelled/expired/error redirect straight to return_url.
    own_failure_pages: bool = False
    # Refunds stay "submitted" (as on live) until refund_settle_after passes or a test settles them.
    live_like_refunds: bool = False
    refund_settle_after: timedelta | None = timedelta(hours=1)
    # How long new payments and changes take to show in searches (and refund lists).
    search_lag: timedelta = timedelta(0)
    # Stripe-like payments: payment_provider "stripe", fee, net_amount, settled_date (+2 working days).
    stripe_mode: bool = False
    # How long a "timeout" fault sleeps before answering (tests use small client timeouts).
    fault_timeout_seconds: float = 20.0

    def account_for_key(self, api_key: str) -> Account | None:
        return self.accounts.get(api_key)

    def check(self) -> None:
        """Refuse keys that are not test keys: the emulator must never stand in for a live account."""
        for key, account in self.accounts.items():
            if not key.startswith("api_test_"):
                kind = "a live key (api_live_…)" if key.startswith("api_live_") else "not a test key (api_test_…)"
                raise RuntimeError(
                    "The GOV.UK Pay emulator only accepts test API keys: "
                    f"the key for account {account.name!r} is {kind}"
                )


_TRUE = {"1", "true", "yes", "on"}


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    return default if value == "" else value in _TRUE


def _seconds(environ: Mapping[str, str], name: str) -> timedelta | None:
    value = environ.get(name, "").strip()
    return timedelta(seconds=float(value)) if value else None


def settings_from_environment(environ: Mapping[str, str] | None = None) -> EmulatorSettings:
    """Read the emulator's settings from the environment (see .env.example).

    GOVUK_PAY_API_KEY is account "default"; GOVUK_PAY_API_KEY_<NAME> is account "<name>". Each
    account's webhook secret is GOVUK_PAY_WEBHOOK_SECRET(_<NAME>); one webhook URL serves them all.
    """
    env = os.environ if environ is None else environ
    webhook_url = env.get("GOVUK_PAY_EMULATOR_WEBHOOK_URL", "").strip()
    accounts: dict[str, Account] = {}
    for variable, key in sorted(env.items()):
        if variable == "GOVUK_PAY_API_KEY":
            suffix = ""
        elif variable.startswith("GOVUK_PAY_API_KEY_"):
            suffix = variable.removeprefix("GOVUK_PAY_API_KEY")
        else:
            continue
        key = key.strip()
        if not key:
            continue
        name = suffix.removeprefix("_").lower() or "default"
        secret = env.get(f"GOVUK_PAY_WEBHOOK_SECRET{suffix}", "").strip()
        if webhook_url and not secret:
            log.warning("GOV.UK Pay emulator: no GOVUK_PAY_WEBHOOK_SECRET%s: %r sends no webhooks", suffix, name)
        accounts[key] = Account(
            name=name,
            webhook_secret=secret,
            webhook_url=webhook_url if secret else "",
            moto_enabled=_flag(env, f"GOVUK_PAY_MOTO_ENABLED{suffix}", False),
        )

    settings = EmulatorSettings(
        accounts=accounts,
        public_url=env.get("GOVUK_PAY_EMULATOR_PUBLIC_URL", "").strip(),
        database_path=env.get("GOVUK_PAY_EMULATOR_DB", "").strip() or DEFAULT_DATABASE_PATH,
        secret_key=env.get("GOVUK_PAY_EMULATOR_SECRET_KEY", "").strip() or secrets.token_hex(32),
        background_webhooks=_flag(env, "GOVUK_PAY_EMULATOR_BACKGROUND_WEBHOOKS", True),
        own_failure_pages=_flag(env, "GOVUK_PAY_EMULATOR_OWN_FAILURE_PAGES", False),
        live_like_refunds=_flag(env, "GOVUK_PAY_EMULATOR_LIVE_LIKE_REFUNDS", False),
        stripe_mode=_flag(env, "GOVUK_PAY_EMULATOR_STRIPE_MODE", False),
    )
    rate = env.get("GOVUK_PAY_EMULATOR_RATE_LIMIT", "").strip()
    if rate:
        settings.rate_limit_per_second = int(rate)
    if (lag := _seconds(env, "GOVUK_PAY_EMULATOR_SEARCH_LAG_SECONDS")) is not None:
        settings.search_lag = lag
    if (settle := _seconds(env, "GOVUK_PAY_EMULATOR_REFUND_SETTLE_SECONDS")) is not None:
        settings.refund_settle_after = settle
    schedule = env.get("GOVUK_PAY_EMULATOR_WEBHOOK_RETRY_SECONDS", "").strip()
    if schedule:
        settings.webhook_retry_schedule = tuple(timedelta(seconds=float(s)) for s in schedule.split(",") if s.strip())
    return settings
