"""Fixtures shared by the integration tests: the app wired to the GOV.UK Pay emulator."""

from __future__ import annotations

import threading

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


# --- races on a database of their own (corrections, refunds) ------------------------------------


@pytest.fixture
def books(fresh_database):
    """For race tests: a minimal council: one fund in one group, a cash and a journal method, one finance officer."""
    from app.domain.funds import Fund, FundGroup, FundGroupFund
    from app.domain.ledger import PostingRequest, post
    from app.domain.methods import MethodOfPayment
    from app.domain.users import User, UserFundGroup, UserRole

    revenues = FundGroup.create(code="REVS", name="Revenues")
    tax = Fund.create(code="CTAX", name="Council tax")
    FundGroupFund.create(fund_group=revenues, fund=tax)
    MethodOfPayment.create(code="JNL", name="Journal or transfer", channel="journal")
    cash = MethodOfPayment.create(code="CASH", name="Cash", channel="cash")
    officer = User.create(email="officer@example.gov.uk", name="Officer", password_hash="x")
    UserRole.create(user=officer, role="finance_officer")
    UserFundGroup.create(user=officer, fund_group=revenues)
    entry = post(
        PostingRequest(
            idempotency_key="race-payment",
            fund=tax,
            account_reference="11111111",
            amount_pence=10_000,
            method=cash,
            source="staff_payment",
        )
    ).entry
    return {"db": fresh_database, "fund": tax, "officer": officer, "entry": entry}


def run_together(db, count: int, work) -> list:
    """Run work(i) on `count` threads released at once; each result or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # the test looks at each outcome
            results[i] = exc
        finally:
            db.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
