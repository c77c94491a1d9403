"""Staff payments: one page, check with the account holder, confirm once, receipts in the ledger."""

from __future__ import annotations

import random

import pytest

from app.domain.audit import AuditEvent
from app.domain.ledger import LedgerEntry
from app.domain.outbox import OutboxMessage
from app.domain.references.demo import generate_valid_reference
from app.domain.staff_payments import StaffPayment
from tests.pages import csrf_token, error_summary, h1, main_text, table_rows

CTAX_REF = "594580735"


def _lib() -> str:
    return generate_valid_reference("LIB", random.Random(3))


def _form(token: str, **overrides) -> dict:
    data = {
        "csrf_token": token,
        "method": "CASH",
        "office": "TH",
        "lines-0-fund": "CTAX",
        "lines-0-reference": CTAX_REF,
        "lines-0-amount": "£120.00",
        "payer_name": "Sam Payer",
        "payer_email": "sam@example.com",
    }
    data.update(overrides)
    return data


def _take(client, **overrides):
    page = client.get("/take-payment")
    assert h1(page.data) == "Take a payment"
    token = csrf_token(page.data)
    response = client.post("/take-payment", data=_form(token, **overrides))
    return token, response


def test_cash_for_two_funds_is_posted_once_with_office_and_user(signed_in):
    client = signed_in("finance")
    token, response = _take(client, **{"lines-1-fund": "LIB", "lines-1-reference": _lib(), "lines-1-amount": "2.50"})
    assert response.status_code == 302, error_summary(response.data)
    check = client.get("/take-payment/check")
    assert h1(check.data) == "Check the payment"
    assert "Cash: £122.50" in main_text(check.data)
    confirm_token = csrf_token(check.data)
    done = client.post("/take-payment/check", data={"csrf_token": confirm_token})
    assert done.status_code == 302
    again = client.post("/take-payment/check", data={"csrf_token": confirm_token})  # a second click
    assert again.status_code == 302 and again.location.endswith("/take-payment")
    payment = StaffPayment.get()
    entries = list(payment.entries())
    assert [(e.fund.code, e.amount_pence, e.source, e.office.code, e.user.email) for e in entries] == [
        ("CTAX", 12_000, "staff_payment", "TH", "finance@demo.example.gov.uk"),
        ("LIB", 250, "staff_payment", "TH", "finance@demo.example.gov.uk"),
    ]
    assert StaffPayment.select().count() == 1
    assert AuditEvent.select().where(AuditEvent.action == "payment.staff").count() == 1
    view = client.get(done.location)
    assert [row[0] for row in table_rows(view.data)] == [e.receipt_reference for e in entries]
    client.post(f"/take-payment/{payment.reference}/email-receipt", data={"csrf_token": csrf_token(view.data)})
    assert OutboxMessage.get(OutboxMessage.purpose == "receipt").to_address == "sam@example.com"


def test_cheque_needs_its_details(signed_in):
    client = signed_in("finance")
    _, response = _take(client, method="CHQ")
    assert response.status_code == 200
    assert "Enter the cheque number: 6 digits, like 000123" in error_summary(response.data)
    _, response = _take(
        client, method="CHQ", cheque_number="000123", sort_code="30-94-30", account_number="00733445", drawer="S Payer"
    )
    assert response.status_code == 302
    check = client.get("/take-payment/check")
    client.post("/take-payment/check", data={"csrf_token": csrf_token(check.data)})
    payment = StaffPayment.get()
    assert (payment.cheque_number, payment.sort_code, payment.account_number) == ("000123", "309430", "00733445")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lines-0-reference": "123"}, "Line 1:"),
        ({"lines-0-amount": ""}, "Line 1: enter the amount"),
        ({"lines-0-amount": "£20,000"}, "Line 1: The amount must be £10,000.00 or less"),
        ({"lines-0-fund": "", "lines-0-reference": "", "lines-0-amount": ""}, "Enter at least one payment"),
        ({"method": ""}, "Select how the payer paid"),
        ({"office": ""}, "Select the office taking the payment"),
        ({"lines-1-fund": "CTAX", "lines-1-reference": CTAX_REF, "lines-1-amount": "1"}, "already in this payment"),
    ],
)
def test_errors_are_specific_and_nothing_is_posted(signed_in, overrides, message):
    client = signed_in("finance")
    before = LedgerEntry.select().count()
    _, response = _take(client, **overrides)
    assert response.status_code == 200
    assert any(message in m for m in error_summary(response.data)), error_summary(response.data)
    assert LedgerEntry.select().count() == before


def test_only_funds_of_your_groups(signed_in):
    client = signed_in("housing")
    _, response = _take(client)
    assert response.status_code == 200
    assert "Line 1: select the fund" in error_summary(response.data)[0] or "cannot take payments" in " ".join(
        error_summary(response.data)
    )
    assert signed_in("auditor").get("/take-payment").status_code == 403


def _telephone(client):
    token, response = _take(client, method="TEL", **{"lines-0-amount": "75.00"})
    assert response.status_code == 302, error_summary(response.data)
    check = client.get("/take-payment/check")
    assert "Continue to card details for £75.00" in main_text(check.data)
    return client.post("/take-payment/check", data={"csrf_token": csrf_token(check.data)})


def test_telephone_card_payment_goes_through_govuk_pay_as_moto_and_records_who_took_it(pay, signed_in):
    from app.domain.payments import Payment

    client = signed_in("finance")
    response = _telephone(client)
    assert response.status_code == 303 and response.location.startswith(f"{pay.base_url}/secure/")
    payment = Payment.get()
    assert (payment.channel, payment.moto, payment.taken_by.email, payment.office.code) == (
        "telephone",
        True,
        "finance@demo.example.gov.uk",
        "TH",
    )
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 0  # not yet paid
    remote = pay.api("GET", f"/v1/payments/{payment.provider_payment_id}").get_json()
    assert remote["moto"] is True

    back = pay.pay(response.location)
    assert back.headers["Location"].endswith(f"/take-payment/card/{payment.return_token}")
    shown = client.get(f"/take-payment/card/{payment.return_token}")
    assert shown.status_code == 302 and shown.location.endswith(f"/payments/{payment.reference}")
    page = client.get(shown.location)
    assert f"Telephone payment {payment.reference} taken: £75.00" in main_text(page.data)
    assert "Taken by" in main_text(page.data)
    entries = list(LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference))
    assert [(e.fund.code, e.amount_pence, e.method.code, e.user.email, e.office.code) for e in entries] == [
        ("CTAX", 7500, "TEL", "finance@demo.example.gov.uk", "TH")
    ]
    client.get(f"/take-payment/card/{payment.return_token}")  # coming back again posts nothing more
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 1


def test_telephone_payment_declined_posts_nothing(pay, signed_in):
    from app.domain.payments import Payment

    client = signed_in("finance")
    response = _telephone(client)
    pay.pay(response.location, card_number="4000000000000002")
    payment = Payment.get()
    shown = client.get(f"/take-payment/card/{payment.return_token}")
    page = client.get(shown.location)
    assert "was not taken" in main_text(page.data)
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 0


def test_moto_needs_the_account_to_allow_it(govuk_pay_emulator):
    from app.integrations.govuk_pay.emulator.errors import ApiError
    from app.integrations.govuk_pay.emulator.validation import validate_create_payment

    body = {"amount": 100, "reference": "R1", "description": "Test", "return_url": "https://x.test/", "moto": True}
    with pytest.raises(ApiError) as refused:
        validate_create_payment(body)
    assert refused.value.code == "P0196"
    assert validate_create_payment(body, moto_enabled=True)["moto"] is True
