"""Fixtures for the built-in GOV.UK Pay emulator (tests/conftest.py loads this with pytest_plugins).

- `govuk_pay_emulator_settings(**overrides)`: a factory of EmulatorSettings for tests: in-memory
  SQLite, a FrozenClock, two test accounts ("default" and "parking"), the rate limiter off,
  webhooks recorded by a RecordingSender (no URL is set, so none are queued until a test sets one).
- `govuk_pay_emulator`: an emulator app per test, driven through Flask's test client (no network).
- `live_govuk_pay_emulator`: one emulator on http://127.0.0.1:<port> for the whole session
  (werkzeug in a thread), on the real clock plus an offset. Call `.reset()` at the start of a
  test that needs a clean slate (or use `fresh_live_govuk_pay_emulator`).

Both harnesses offer the same helpers: `reset()`, `inject_fault(kind, count, **options)`,
`advance(**timedelta_kwargs)`, `deliver_due_webhooks()`, `deliveries()`,
`set_webhook_target(url, sender=None)`, `set_webhook_options(...)`, `set_rate_limit(n)`,
`settle_refund(refund_id, status)` and `pay(next_url, card_number=…)` which walks the hosted
card pages like a payer (card details, then Confirm or Cancel) and returns the last response
(a 302 to return_url when the payer is sent back).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from app.config import TEST_PAY_ACCOUNTS
from app.integrations.govuk_pay.emulator import (
    Account,
    Emulator,
    EmulatorSettings,
    FrozenClock,
    SystemClock,
    create_app,
    get_emulator,
)
from tests.pages import page_problems

# The same keys and secrets as the app's TestingConfig, so the app under test and the emulator agree.
(_, TEST_API_KEY, TEST_WEBHOOK_SECRET), (_, PARKING_API_KEY, PARKING_WEBHOOK_SECRET) = TEST_PAY_ACCOUNTS
SUCCESS_CARD = "4444333322221111"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- webhook senders --------------------------------------------------------------------------


@dataclass
class SentWebhook:
    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class RecordingSender:
    """A webhook sender that records each POST and answers `status` (or the next of `answer(...)`)."""

    status: int = 200
    calls: list[SentWebhook] = field(default_factory=list)
    _queued: deque = field(default_factory=deque)

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.calls.append(SentWebhook(url, body, dict(headers)))
        answer = self._queued.popleft() if self._queued else self.status
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def answer(self, *statuses: int | BaseException) -> None:
        """Answer the next deliveries with these statuses (or raise these exceptions), then `status`."""
        self._queued.extend(statuses)

    def event_types(self) -> list[str]:
        return [call.json["event_type"] for call in self.calls]


def flask_client_sender(client: FlaskClient):
    """Deliver webhooks to a Flask app through its test client (the URL's path is used)."""

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return client.post(path, data=body, headers=headers).status_code

    return send


# --- settings -----------------------------------------------------------------------------


def make_emulator_settings(**overrides: Any) -> EmulatorSettings:
    defaults: dict[str, Any] = {
        "accounts": {
            TEST_API_KEY: Account(name="default", webhook_secret=TEST_WEBHOOK_SECRET, moto_enabled=True),
            PARKING_API_KEY: Account(name="parking", webhook_secret=PARKING_WEBHOOK_SECRET),
        },
        "database_path": ":memory:",
        "clock": FrozenClock(),
        "secret_key": "govuk-pay-emulator-test-secret-key-0123456789",
        "rate_limit_per_second": 0,
        "webhook_sender": RecordingSender(),
        "background_webhooks": False,
        "fault_timeout_seconds": 2.0,
    }
    defaults.update(overrides)
    return EmulatorSettings(**defaults)


@pytest.fixture
def govuk_pay_emulator_settings():
    """govuk_pay_emulator_settings(**overrides) → EmulatorSettings for a test emulator."""
    return make_emulator_settings


# --- harnesses ----------------------------------------------------------------------------


class PageCheckedClient(FlaskClient):
    """Flask's test client, running the project's page check (tests/pages.py) on every HTML page."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if response.mimetype == "text/html" and response.status_code not in (301, 302, 303, 307, 308) and response.data:
            problems = page_problems(response.get_data())
            if problems:
                raise AssertionError(f"Page check failed for {response.request.path}:\n  - " + "\n  - ".join(problems))
        return response


class EmulatorHarness:
    """An emulator app and helpers to drive it from a test."""

    def __init__(self, app: Flask, base_url: str) -> None:
        self.app = app
        self.emulator: Emulator = get_emulator(app)
        self.settings: EmulatorSettings = self.emulator.settings
        self.clock = self.settings.clock
        self.base_url = base_url
        self.api_key = TEST_API_KEY
        self.webhook_secret = TEST_WEBHOOK_SECRET
        self._accounts = dict(self.settings.accounts)

    @property
    def sender(self):
        return self.emulator.webhooks.sender

    def reset(self) -> None:
        """Forget all payments, faults and deliveries; restore accounts, webhook options and the clock offset."""
        self.settings.accounts.clear()
        self.settings.accounts.update(self._accounts)
        self.emulator.reset()
        if isinstance(self.clock, SystemClock):
            self.clock.reset()
        if isinstance(self.sender, RecordingSender):
            self.sender.calls.clear()

    def inject_fault(self, kind: str, count: int = 1, **options: Any) -> None:
        """kind: error | unavailable | blocked | timeout | drop | card_error | payer_never_returns."""
        self.emulator.faults.add(kind, count, **options)

    def clear_faults(self) -> None:
        self.emulator.faults.clear()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        return self.emulator.advance(delta if delta is not None else timedelta(**kwargs))

    def deliver_due_webhooks(self) -> list[dict[str, Any]]:
        return self.emulator.deliver_due_webhooks()

    def deliveries(self) -> list[dict[str, Any]]:
        return self.emulator.deliveries()

    def set_webhook_target(self, url: str, sender=None) -> None:
        self.emulator.set_webhook_target(url, sender=sender)

    def set_webhook_options(self, **options: Any):
        return self.emulator.set_webhook_options(**options)

    def set_rate_limit(self, per_second: int) -> None:
        self.emulator.rate_limiter.reset(per_second)

    def settle_refund(self, refund_id: str, status: str = "success") -> dict[str, Any]:
        return self.emulator.settle_refund(refund_id, status)

    def browser(self):
        """A fresh 'browser' (cookie jar) for the hosted pages."""
        raise NotImplementedError

    def pay(self, next_url: str, card_number: str = SUCCESS_CARD, *, confirm: bool = True, **fields: str):
        """Walk the hosted pages like a payer; returns the last response (302 to return_url when sent back)."""
        return walk_card_pages(self.browser(), next_url, card_number, confirm=confirm, **fields)


class TestClientEmulator(EmulatorHarness):
    """The emulator behind Flask's test client: no network at all."""

    __test__ = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app, "http://localhost")
        app.test_client_class = PageCheckedClient
        self.client = app.test_client()

    def browser(self):
        return self.app.test_client()

    def api(self, method: str, path: str, *, key: str | None = None, **kwargs: Any):
        """Call the API with a bearer key (the default account's unless `key` is given; "" for none)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        key = self.api_key if key is None else key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def create_payment(self, key: str | None = None, **overrides: Any) -> dict[str, Any]:
        body = {
            "amount": 1250,
            "reference": "EMU-0001",
            "description": "Council tax",
            "return_url": "https://ims.example/pay/return/token-1",
        }
        body.update(overrides)
        response = self.api("POST", "/v1/payments", key=key, json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()


class LiveEmulator(EmulatorHarness):
    """The emulator on a real socket: http://127.0.0.1:<port>."""

    def __init__(self, app: Flask, base_url: str) -> None:
        super().__init__(app, base_url)

    def browser(self):
        import httpx

        return httpx.Client(timeout=10)

    def http_client(self, key: str | None = None, **kwargs: Any):
        """An httpx.Client on the emulator with the bearer key set."""
        import httpx

        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)


def walk_card_pages(browser, next_url: str, card_number: str, *, confirm: bool = True, **fields: str):
    """Fill in and submit the hosted pages with `browser` (Flask test client or httpx.Client)."""
    response = browser.get(next_url)
    if response.status_code != 303:
        return response
    card_url = urljoin(next_url, response.headers["Location"])
    page = browser.get(card_url)
    if page.status_code != 200:
        return page
    amex = card_number.startswith(("34", "37"))
    form = {
        "csrf_token": _csrf(page.text),
        "card_number": card_number,
        "expiry_month": "12",
        "expiry_year": "2099",
        "cardholder_name": "Test Payer",
        "cvc": "1234" if amex else "123",
        "address_line1": "1 Test Street",
        "address_line2": "",
        "address_city": "Testtown",
        "address_postcode": "TE1 1ST",
        "email": "",
    }
    form.update(fields)
    response = browser.post(card_url, data=form)
    if response.status_code != 303:
        return response  # an error on the form, or a failure page (declined, error …)
    confirm_url = urljoin(card_url, response.headers["Location"])
    page = browser.get(confirm_url)
    action = confirm_url if confirm else confirm_url.removesuffix("/confirm") + "/cancel"
    return browser.post(action, data={"csrf_token": _csrf(page.text)})


def _csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token on the page"
    return found.group(1)


@pytest.fixture
def govuk_pay_emulator(govuk_pay_emulator_settings) -> TestClientEmulator:
    """A fresh emulator (default test settings) behind Flask's test client."""
    return TestClientEmulator(create_app(govuk_pay_emulator_settings()))


@pytest.fixture(scope="session")
def live_govuk_pay_emulator():
    """One emulator on 127.0.0.1 for the session: real clock (advance() moves an offset), webhooks off until set."""
    settings = make_emulator_settings(clock=SystemClock())
    app = create_app(settings)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="govuk-pay-emulator", daemon=True)
    thread.start()
    settings.public_url = f"http://127.0.0.1:{server.server_port}"
    get_emulator(app).base_url = settings.public_url
    live = LiveEmulator(app, settings.public_url)
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(timeout=10)
        live.emulator.stop_background_delivery()


@pytest.fixture
def fresh_live_govuk_pay_emulator(live_govuk_pay_emulator) -> LiveEmulator:
    """The session's live emulator, reset for this test."""
    live_govuk_pay_emulator.reset()
    return live_govuk_pay_emulator


__all__ = [
    "PARKING_API_KEY",
    "PARKING_WEBHOOK_SECRET",
    "SUCCESS_CARD",
    "TEST_API_KEY",
    "TEST_WEBHOOK_SECRET",
    "EmulatorHarness",
    "LiveEmulator",
    "RecordingSender",
    "SentWebhook",
    "TestClientEmulator",
    "flask_client_sender",
    "make_emulator_settings",
    "walk_card_pages",
]
