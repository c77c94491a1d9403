"""Refunds: what remains refundable, approval by a second person, card refunds through GOV.UK Pay."""

from __future__ import annotations

import random

import pytest

from app.domain import refunds
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.ledger import LedgerEntry, PostingRequest, post
from app.domain.methods import MethodOfPayment
from app.domain.payments import Payment
from app.domain.references.demo import generate_valid_reference
from app.domain.refunds import Refund
from app.domain.users import User
from tests.pages import DEMO_EMAILS, csrf_token, error_summary, h1


def _user(who: str) -> User:
    return User.get(User.email == DEMO_EMAILS[who])


def _cash_entry(amount: int = 100_000, key: str = "refund-test") -> LedgerEntry:
    fund = Fund.by_code("CTAX")
    return post(
        PostingRequest(
            idempotency_key=key,
            fund=fund,
            account_reference=generate_valid_reference("CTAX", random.Random(5)),
            amount_pence=amount,
            method=MethodOfPayment.by_code("CASH"),
            source="staff_payment",
        )
    ).entry


def test_small_bacs_refund_is_posted_at_once(app):
    entry = _cash_entry()
    refund, created = refunds.request_refund(entry, _user("finance"), 2_500, "Overpaid", submission_key="r1")
    assert created and refund.status == "submitted" and refund.route == "bacs"
    refund = refunds.carry_out(refund)
    assert refund.status == "to_pay_by_bacs"
    posted = refund.refund_entry
    assert (posted.amount_pence, posted.source, posted.corrects_id, posted.fund_id) == (
        -2_500,
        "refund",
        entry.id,
        entry.fund_id,
    )
    assert refunds.refundable_pence(entry) == 97_500
    # The same submission again changes nothing.
    again, created = refunds.request_refund(entry, _user("finance"), 2_500, "Overpaid", submission_key="r1")
    assert not created and again.id == refund.id
    refunds.carry_out(again)
    assert LedgerEntry.select().where(LedgerEntry.corrects == entry).count() == 1


def test_never_more_than_what_remains(app):
    entry = _cash_entry(10_000)
    refunds.request_refund(entry, _user("finance"), 6_000, "Part", submission_key="a")
    with pytest.raises(DomainError, match="You can refund up to £40.00"):
        refunds.request_refund(entry, _user("finance"), 4_001, "More", submission_key="b")
    with pytest.raises(DomainError, match="Enter the reason"):
        refunds.request_refund(entry, _user("finance"), 100, " ", submission_key="c")


def test_big_refund_needs_someone_else_to_approve(app):
    entry = _cash_entry()
    refund, _ = refunds.request_refund(entry, _user("senior"), 60_000, "Paid twice", submission_key="big")
    assert refund.status == "awaiting_approval"
    assert refunds.refundable_pence(entry) == 40_000  # held back while waiting
    with pytest.raises(DomainError, match="someone else must approve"):
        refunds.decide(refund, _user("senior"), True)
    with pytest.raises(DomainError, match="Only a senior finance officer"):
        refunds.decide(refund, _user("finance"), True)
    assert LedgerEntry.select().where(LedgerEntry.corrects == entry).count() == 0
    admin_senior = User.get(User.email == DEMO_EMAILS["senior"])
    assert admin_senior  # the only demo approver asked; make a second approver
    from app.domain.users import create_user

    groups = [group.id for group in admin_senior.fund_groups()]
    second, _ = create_user(
        None, email="second.senior@demo.example.gov.uk", name="Second Senior",
        roles=["senior_finance_officer"], fund_group_ids=groups,
    )  # fmt: skip
    decided = refunds.decide(refund, second, True)
    assert refunds.carry_out(decided).status == "to_pay_by_bacs"
    with pytest.raises(DomainError, match="already been decided"):
        refunds.decide(refund, second, False, "no")


def test_refund_pages(signed_in, app):
    entry = _cash_entry()
    client = signed_in("finance")
    page = client.get(f"/transactions/{entry.receipt_reference}/refund")
    assert h1(page.data) == f"Refund receipt {entry.receipt_reference}"
    data = {"csrf_token": csrf_token(page.data), "amount": "£2,000", "reason": "Too much", "submission_key": "k1"}
    over = client.post(f"/transactions/{entry.receipt_reference}/refund", data=data)
    assert error_summary(over.data) == ["You can refund up to £1,000.00"]
    data["amount"] = "£600"
    done = client.post(f"/transactions/{entry.receipt_reference}/refund", data=data)
    assert done.status_code == 302
    refund = Refund.get()
    assert refund.status == "awaiting_approval"
    senior = signed_in("senior")
    view = senior.get(f"/refunds/{refund.reference}")
    decided = senior.post(
        f"/refunds/{refund.reference}", data={"csrf_token": csrf_token(view.data), "decision": "approve"}
    )
    assert decided.status_code == 302
    assert Refund.get().status == "to_pay_by_bacs"
    assert signed_in("housing").get(f"/refunds/{refund.reference}").status_code == 404


def test_card_refund_through_govuk_pay(pay, client, signed_in):
    from tests.integration.test_citizen_payments import _continue_to_payment, _fill_basket, _return_path

    _fill_basket(client)
    client.get(_return_path(pay.pay(_continue_to_payment(client).location)))
    payment = Payment.get()
    entry = payment.ordered_items()[0].ledger_entry
    refund, _ = refunds.request_refund(entry, _user("finance"), 2_345, "Duplicate", submission_key="card1")
    assert refund.route == "card"
    done = refunds.carry_out(refund, client.application.extensions["govuk_pay"].client)
    assert done.status == "succeeded" and done.provider_refund_id
    assert done.refund_entry.amount_pence == -2_345
    remote = client.application.extensions["govuk_pay"].client("default").get_payment(payment.provider_payment_id)
    assert remote.refund_summary.amount_submitted == 2_345


# --- races: one wins, nothing doubled ------------------------------------------------------------

from tests.integration.conftest import run_together  # noqa: E402 - `books` is a fixture there too


def test_a_double_click_on_refund_makes_one_refund_and_one_entry(books):
    entry, officer = books["entry"], books["officer"]
    results = run_together(
        books["db"], 8, lambda i: refunds.request_refund(entry, officer, 2_500, "Paid twice", submission_key="click")
    )
    assert all(isinstance(r, tuple) for r in results), results
    assert sum(created for _, created in results) == 1
    assert Refund.select().count() == 1
    refund = Refund.get()
    refunds.carry_out(refund)
    refunds.carry_out(Refund.get_by_id(refund.id))  # the job running twice posts once
    assert LedgerEntry.select().where(LedgerEntry.source == "refund").count() == 1
    assert refunds.refundable_pence(entry) == entry.amount_pence - 2_500


def test_two_officers_refunding_most_of_one_payment_at_once_refund_it_once(books):
    entry, officer = books["entry"], books["officer"]
    results = run_together(
        books["db"],
        6,
        lambda i: refunds.request_refund(entry, officer, 6_000, "Overpaid", submission_key=f"tab-{i}"),
    )
    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(made) == 1 and len(refused) == 5, results
    assert all("You can refund up to £40.00" in r.message for r in refused)
    assert Refund.select().count() == 1
    assert refunds.refundable_pence(entry) == 4_000


def test_journal_lines_are_not_refunded_the_payment_they_came_from_is(books):
    from app.domain import corrections
    from app.domain.corrections import Line

    entry, officer, tax = books["entry"], books["officer"], books["fund"]
    corrections.journal(entry, officer, "Wrong account", [Line(tax, "22222222", 3_000)], submission_key="j1")
    moved = LedgerEntry.get((LedgerEntry.source == "journal") & (LedgerEntry.amount_pence > 0))
    with pytest.raises(DomainError, match="refund the payment this came from"):
        refunds.request_refund(moved, officer, 1_000, "Overpaid", submission_key="r1")
    assert refunds.refundable_pence(entry) == 7_000  # the journal already took £30 off the payment
    refund, _ = refunds.request_refund(entry, officer, 7_000, "Overpaid", submission_key="r2")
    assert refund.amount_pence == 7_000
