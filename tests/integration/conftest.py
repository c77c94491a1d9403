"""Fixtures shared by the integration tests: the app wired to the GOV.UK Pay emulator."""

from __future__ import annotations

import httpx
import pytest

from app.integrations.govuk_pay.accounts import PayGateway
from app.integrations.govuk_pay.emulator import get_emulator
from tests.govuk_pay_emulator import flask_client_sender

# Where the in-process emulator says it lives: next_url and every link it returns start with this.
PAY_HOST = "http://govuk-pay.test"


@pytest.fixture
def pay(app, govuk_pay_emulator, client):
    """The emulator wired to the app: API calls through WSGI, webhooks into the app's test client.

    No network: the app's GOV.UK Pay client reaches the emulator through httpx.WSGITransport
    (retries do not sleep), and `pay.pay(next_url)` walks the hosted pages with the emulator's
    own test client. `pay.base_url` is PAY_HOST.
    """
    emulator = govuk_pay_emulator
    emulator.settings.public_url = PAY_HOST
    emulator.base_url = PAY_HOST
    get_emulator(emulator.app).base_url = PAY_HOST
    saved = app.extensions["govuk_pay"]
    app.extensions["govuk_pay"] = PayGateway(
        app.config["GOVUK_PAY_ACCOUNTS"],
        PAY_HOST,
        transport=httpx.WSGITransport(app=emulator.app),
        client_options={"sleep": lambda _seconds: None},
    )
    emulator.set_webhook_target("http://localhost/webhooks/govuk-pay", sender=flask_client_sender(client))
    try:
        yield emulator
    finally:
        app.extensions["govuk_pay"] = saved
