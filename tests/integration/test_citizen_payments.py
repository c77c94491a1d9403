"""The citizen's basket journey end to end, against the GOV.UK Pay emulator (in-process, no network).

The app's GOV.UK Pay client talks to the emulator through httpx's WSGI transport; the hosted
card pages are walked with the emulator's own test client; webhooks from the emulator are
delivered into the app's test client (the `pay` fixture, tests/integration/conftest.py).
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from urllib.parse import urlsplit

import pytest

from app.domain import payments
from app.domain.ledger import LedgerEntry
from app.domain.outbox import OutboxMessage
from app.domain.payments import Payment
from tests.govuk_pay_emulator import TEST_WEBHOOK_SECRET
from tests.pages import csrf_token, error_summary, h1, main_text, table_rows


def _lib() -> str:
    import random

    from app.domain.references.demo import generate_valid_reference

    return generate_valid_reference("LIB", random.Random(3))


CTAX_REF = "594580735"


def _fill_basket(client, items=((("CTAX", CTAX_REF, "£123.45")),), email="payer@example.com"):
    token = csrf_token(client.get("/pay/items/0/payment-for").data)
    for n, (fund, reference, amount) in enumerate(items):
        assert client.post(f"/pay/items/{n}/payment-for", data={"fund": fund, "csrf_token": token}).status_code == 302
        response = client.post(f"/pay/items/{n}/reference", data={"reference": reference, "csrf_token": token})
        assert response.status_code == 302, error_summary(response.data)
        response = client.post(f"/pay/items/{n}/amount", data={"amount": amount, "csrf_token": token})
        assert response.status_code == 302, error_summary(response.data)
        if response.location.endswith("/pay/address"):
            response = client.post(
                "/pay/address",
                data={
                    "name": "Pat Payer",
                    "line1": "1 High Street",
                    "town": "Demoton",
                    "postcode": "de1 1aa",
                    "csrf_token": token,
                },
            )
        if response.location.endswith("/pay/email"):
            client.post("/pay/email", data={"email": email, "csrf_token": token})
    return token


def _continue_to_payment(client):
    page = client.get("/pay/check")
    assert page.status_code == 200
    form = {"csrf_token": csrf_token(page.data)}
    import re

    form["basket_key"] = re.search(rb'name="basket_key" type="hidden" value="([^"]+)"', page.data).group(1).decode()
    return client.post("/pay/check", data=form)


def _return_path(response) -> str:
    assert response.status_code == 302, response
    return urlsplit(response.headers["Location"]).path


def test_pay_for_two_things_and_get_a_receipt(pay, client):
    _fill_basket(client, [("CTAX", CTAX_REF, "£1,234.50"), ("LIB", _lib(), "2.5")])
    check = client.get("/pay/check")
    assert h1(check.data) == "Check your payments"
    assert "Total to pay: £1,237.00" in main_text(check.data)
    response = _continue_to_payment(client)
    assert response.status_code == 303
    assert response.location.startswith(f"{pay.base_url}/secure/")
    assert "GOVUK_PAY" not in response.location
    # The check page now allows a redirect to GOV.UK Pay in its form-action.
    assert pay.base_url in check.headers["Content-Security-Policy"]

    back = pay.pay(response.location)
    status = client.get(_return_path(back))
    assert h1(status.data) == "Payment complete"
    payment = Payment.get(Payment.return_token == _return_path(back).rsplit("/", 1)[1])
    assert payment.status == "succeeded" and payment.card_last_digits == "1111"
    entries = list(
        LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).order_by(LedgerEntry.id)
    )
    assert [(e.fund.code, e.account_reference, e.amount_pence, e.source) for e in entries] == [
        ("CTAX", CTAX_REF, 123_450, "payment"),
        ("LIB", _lib(), 250, "payment"),
    ]
    assert all(e.method.channel == "online_card" and e.payer_email == "payer@example.com" for e in entries)
    rows = table_rows(status.data)
    assert [row[2] for row in rows[:2]] == [e.receipt_reference for e in entries]
    receipt = OutboxMessage.get(OutboxMessage.purpose == "receipt")
    assert receipt.to_address == "payer@example.com"
    assert payment.reference in receipt.body and entries[0].receipt_reference in receipt.body

    # Reloading the return page, the webhooks and the job change nothing.
    client.get(_return_path(back))
    pay.deliver_due_webhooks()
    payments.recover_payments(lambda name: client.application.extensions["govuk_pay"].client(name))
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 2
    assert OutboxMessage.select().where(OutboxMessage.purpose == "receipt").count() == 1


def test_back_button_after_paying_never_pays_twice(pay, client):
    _fill_basket(client)
    first = _continue_to_payment(client)
    back = pay.pay(first.location)
    client.get(_return_path(back))
    # The browser's back button: the check page (and every question) now lead to the outcome.
    again = client.get("/pay/check")
    assert again.status_code == 302 and _return_path(again) == _return_path(back)
    assert client.get("/pay/items/0/amount").status_code == 302
    assert Payment.select().count() == 1
    assert (
        LedgerEntry.select().where(LedgerEntry.source == "payment", LedgerEntry.account_reference == CTAX_REF).count()
        >= 1
    )


def test_pressing_pay_twice_makes_one_payment(pay, client):
    _fill_basket(client)
    page = client.get("/pay/check")
    import re

    form = {
        "csrf_token": csrf_token(page.data),
        "basket_key": re.search(rb'name="basket_key" type="hidden" value="([^"]+)"', page.data).group(1).decode(),
    }
    first = client.post("/pay/check", data=form)
    second = client.post("/pay/check", data=form)  # the same form again (double click, resubmission)
    assert first.status_code == 303
    assert second.status_code == 302  # to the status page, not another card page
    assert Payment.select().count() == 1


@pytest.mark.parametrize(
    ("card", "heading", "status", "outcome"),
    [
        ("4000000000000002", "Your payment was declined", "failed", "declined"),
        ("4000000000000119", "Sorry, there was a problem with your payment", "failed", "error"),
    ],
)
def test_failed_card_offers_a_new_payment(pay, client, card, heading, status, outcome):
    _fill_basket(client)
    first = _continue_to_payment(client)
    failure = pay.pay(first.location, card_number=card)
    # The emulator shows its own failure page, with Continue back to us.
    assert failure.status_code == 200
    token = Payment.get().return_token
    page = client.get(f"/pay/return/{token}")
    assert h1(page.data) == heading
    payment = Payment.get()
    assert (payment.status, payment.outcome) == (status, outcome)
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 0
    # Try again: a new GOV.UK Pay payment for the same basket.
    retry = client.post(f"/pay/return/{token}/try-again", data={"csrf_token": csrf_token(page.data)})
    assert retry.status_code == 303 and retry.location.startswith(f"{pay.base_url}/secure/")
    assert Payment.select().count() == 2
    new = Payment.select().order_by(Payment.id.desc()).get()
    assert new.retry_of_id == payment.id and new.provider_payment_id != payment.provider_payment_id
    client.get(_return_path(pay.pay(retry.location)))
    assert Payment.get_by_id(new.id).status == "succeeded"
    assert LedgerEntry.select().where(LedgerEntry.source_reference == new.reference).count() == 1


def test_cancelled_payment_goes_back_to_the_basket(pay, client):
    _fill_basket(client)
    first = _continue_to_payment(client)
    pay.pay(first.location, confirm=False)
    payment = Payment.get()
    page = client.get(f"/pay/return/{payment.return_token}")
    assert h1(page.data) == "You cancelled your payment"
    response = client.post(f"/pay/return/{payment.return_token}/basket", data={"csrf_token": csrf_token(page.data)})
    assert response.location.endswith("/pay/check")
    check = client.get("/pay/check")
    assert CTAX_REF in main_text(check.data)


def test_citizen_who_never_returns_is_recovered_by_the_job(pay, client, app):
    _fill_basket(client)
    first = _continue_to_payment(client)
    pay.inject_fault("payer_never_returns")
    pay.pay(first.location)
    payment = Payment.get()
    assert payment.status == "in_progress"
    report = payments.recover_payments(
        app.extensions["govuk_pay"].client, now=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5)
    )
    assert report.finished == 1
    assert Payment.get().status == "succeeded"
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 1


def test_webhook_alone_posts_the_payment(pay, client):
    _fill_basket(client)
    first = _continue_to_payment(client)
    pay.inject_fault("payer_never_returns")
    pay.pay(first.location)
    delivered = pay.deliver_due_webhooks()
    assert delivered
    payment = Payment.get()
    assert payment.status == "succeeded"
    assert payment.events.where(payments.PaymentEvent.source == "webhook").exists()
    assert payments.WebhookMessage.select().count() >= 1


def test_forged_and_duplicate_webhooks(pay, client):
    body = json.dumps({"webhook_message_id": "m1", "resource_id": "nope", "event_type": "card_payment_succeeded"})
    forged = client.post("/webhooks/govuk-pay", data=body, headers={"Pay-Signature": "0" * 64})
    assert forged.status_code == 401
    unsigned = client.post("/webhooks/govuk-pay", data=body)
    assert unsigned.status_code == 401
    signature = hmac.new(TEST_WEBHOOK_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    first = client.post("/webhooks/govuk-pay", data=body, headers={"Pay-Signature": signature})
    second = client.post("/webhooks/govuk-pay", data=body, headers={"Pay-Signature": signature})
    assert first.status_code == second.status_code == 200
    assert second.get_json()["duplicate"] is True
    assert payments.WebhookMessage.select().count() == 1
    assert payments.WebhookMessage.get().outcome == "Not a payment made by this service"


def test_tampered_return_token_is_not_found(pay, client):
    _fill_basket(client)
    _continue_to_payment(client)
    token = Payment.get().return_token
    assert client.get(f"/pay/return/{token[:-1]}x").status_code == 404
    assert client.get("/pay/return/short").status_code == 404


@pytest.mark.parametrize("kind", ["error", "unavailable", "timeout", "drop", "rate_limited"])
def test_pay_down_when_starting_takes_no_money_and_can_be_retried(pay, client, kind):
    _fill_basket(client)
    if kind == "rate_limited":
        pay.inject_fault("respond", count=10, status=429, code="P0900", description="Too many requests")
    else:
        pay.inject_fault(kind, count=10, process=False, seconds=0.01)
    response = _continue_to_payment(client)
    assert response.status_code == 503
    assert "No money has been taken" in main_text(response.data)
    payment = Payment.get()
    assert payment.status == "created" and "Could not reach GOV.UK Pay" in payment.last_error
    pay.clear_faults()
    retry = client.post(f"/pay/return/{payment.return_token}/continue", data={"csrf_token": csrf_token(response.data)})
    assert retry.status_code == 303 and retry.location.startswith(f"{pay.base_url}/secure/")
    assert Payment.select().count() == 1


def test_pay_down_on_return_shows_checking_and_never_fails(pay, client):
    _fill_basket(client)
    first = _continue_to_payment(client)
    back = pay.pay(first.location)
    pay.inject_fault("error", count=10)
    page = client.get(_return_path(back))
    assert h1(page.data) == "We are checking your payment"
    assert Payment.get().status == "in_progress"
    # htmx asks again: still checking, a partial
    partial = client.get(_return_path(back), headers={"HX-Request": "true"})
    assert partial.status_code == 200 and b"payment-checking" in partial.data
    pay.clear_faults()
    done = client.get(_return_path(back), headers={"HX-Request": "true"})
    assert done.status_code == 204 and done.headers["HX-Redirect"] == _return_path(back)
    assert Payment.get().status == "succeeded"


def test_expired_payment(pay, client, app):
    _fill_basket(client)
    _continue_to_payment(client)
    pay.advance(minutes=91)
    payment = Payment.get()
    page = client.get(f"/pay/return/{payment.return_token}")
    assert h1(page.data) == "Your payment session has expired"
    assert Payment.get().status == "expired"


def test_funds_of_different_pay_accounts_never_share_a_payment(pay, client):
    token = _fill_basket(client)
    page = client.get("/pay/items/1/payment-for")
    assert "Parking" not in " ".join(r for r in main_text(page.data).split("You need to pay")[0:1])
    forced = client.post("/pay/items/1/payment-for", data={"fund": "PCN", "csrf_token": token})
    assert forced.status_code == 200
    assert "has to be paid separately" in error_summary(forced.data)[0]


def test_parking_fine_goes_to_the_parking_account(pay, client):
    import random

    from app.domain.references.demo import generate_valid_reference

    _fill_basket(client, [("PCN", generate_valid_reference("PCN", random.Random(7)), "£70")])
    response = _continue_to_payment(client)
    payment = Payment.get()
    assert payment.pay_account == "parking"
    client.get(_return_path(pay.pay(response.location)))
    assert Payment.get().status == "succeeded"


def test_question_pages_give_specific_errors(pay, client):
    token = csrf_token(client.get("/pay/items/0/payment-for").data)
    assert error_summary(client.post("/pay/items/0/payment-for", data={"csrf_token": token}).data) == [
        "Select what you want to pay for"
    ]
    client.post("/pay/items/0/payment-for", data={"fund": "CTAX", "csrf_token": token})
    bad = client.post("/pay/items/0/reference", data={"reference": "123", "csrf_token": token})
    assert error_summary(bad.data)[0].startswith("Enter your council tax account number")
    client.post("/pay/items/0/reference", data={"reference": CTAX_REF, "csrf_token": token})
    for amount, message in [
        ("", "Enter how much you want to pay"),
        ("12.345", "no more than 2 decimal places"),
        ("twelve", "Enter an amount in pounds and pence, like £1,234.50"),
        ("£0.50", "The amount must be £1.00 or more"),
        ("£20,000", "The amount must be £10,000.00 or less"),
    ]:
        page = client.post("/pay/items/0/amount", data={"amount": amount, "csrf_token": token})
        assert page.status_code == 200
        assert message.lower() in error_summary(page.data)[0].lower(), (amount, error_summary(page.data))
    # The same reference twice in one basket is refused.
    client.post("/pay/items/0/amount", data={"amount": "10", "csrf_token": token})
    client.post("/pay/email", data={"email": "", "csrf_token": token})
    client.post("/pay/items/1/payment-for", data={"fund": "CTAX", "csrf_token": token})
    twice = client.post("/pay/items/1/reference", data={"reference": CTAX_REF, "csrf_token": token})
    assert "already added" in error_summary(twice.data)[0]


def test_remove_an_item(pay, client):
    token = _fill_basket(client, [("CTAX", CTAX_REF, "10"), ("LIB", _lib(), "2")])
    client.post("/pay/items/0/remove", data={"csrf_token": token})
    text = main_text(client.get("/pay/check").data)
    assert CTAX_REF not in text and "Total to pay: £2.00" in text


def test_staff_see_every_attempt_with_its_history(pay, client, signed_in):
    _fill_basket(client)
    first = _continue_to_payment(client)
    client.get(_return_path(pay.pay(first.location)))
    payment = Payment.get()
    staff = signed_in("finance")
    listing = staff.get("/payments")
    assert payment.reference in main_text(listing.data)
    page = staff.get(f"/payments/{payment.reference}")
    assert h1(page.data) == f"Payment {payment.reference}"
    text = main_text(page.data)
    assert "Paid" in text and "Citizen returned from GOV.UK Pay" in text
    # housing staff do not see council tax payments
    assert signed_in("housing").get(f"/payments/{payment.reference}").status_code == 404


def test_many_funds_are_a_select_that_becomes_an_autocomplete(pay, client):
    from app.domain.configuration import create_config
    from app.domain.funds import Fund

    for i in range(8):
        create_config(
            Fund, None, {"code": f"XTRA{i}", "name": f"Extra fund {i}", "shown_to_citizens": True, "minimum_pence": 1}
        )
    page = client.get("/pay/items/0/payment-for")
    assert b"<select" in page.data and b'data-module="app-autocomplete"' in page.data
    assert b"accessible-autocomplete.min.js" in page.data
    assert h1(page.data) == "What do you want to pay for?"
    response = client.post("/pay/items/0/payment-for", data={"fund": "XTRA3", "csrf_token": csrf_token(page.data)})
    assert response.status_code == 302 and response.location.endswith("/pay/items/0/reference")
