"""The citizen's card payment through the GOV.UK Pay emulator in a real browser, JavaScript on and off.

axe runs on every page, ours and the emulator's hosted card pages. The app talks to the session's
live emulator (tests/e2e/conftest.py); the `govuk_pay` fixture resets it and sends its webhooks to
the e2e server, so a test can deliver them and see that they change nothing once the payer is back.
"""

from __future__ import annotations

import random
import re

from playwright.sync_api import expect

from tests.e2e.browser import Journey
from tests.e2e.test_journeys import filter_results, follow, heading, sign_in, sign_out, submit

VALID_CTAX = "594580735"
INVALID_CTAX = "594580736"  # the valid one with its check digit changed
GOOD_CARD = "4444333322221111"
DECLINED_CARD = "4000000000000002"
_RETURN = re.compile(r"/pay/return/([^/?#]+)$")


def lib_reference() -> str:
    from app.domain.references.demo import generate_valid_reference

    return generate_valid_reference("LIB", random.Random(3))


def payer_email(journey: Journey) -> str:
    return f"payer-{journey.name.replace('_', '-')}-{journey.mode}@example.com"


# --- the citizen's pages ----------------------------------------------------------------------


def start(journey: Journey) -> None:
    page = journey.visit("/", "start")
    page.get_by_role("button", name="Start now").click()
    journey.check("payment-for")
    expect(heading(journey)).to_have_text("What do you want to pay for?")


def choose(journey: Journey, fund: str, label: str) -> None:
    journey.page.get_by_label(fund, exact=True).check()
    submit(journey, "Continue", label)


def enter_reference(journey: Journey, reference: str, label: str) -> None:
    journey.page.get_by_role("textbox").fill(reference)
    submit(journey, "Continue", label)


def enter_amount(journey: Journey, amount: str, label: str) -> None:
    page = journey.page
    expect(heading(journey)).to_have_text("How much do you want to pay?")
    page.get_by_label("How much do you want to pay?", exact=True).fill(amount)
    submit(journey, "Continue", label)


def enter_email(journey: Journey, label: str = "email-entered") -> None:
    page = journey.page
    expect(heading(journey)).to_have_text("Do you want a receipt by email?")
    page.get_by_label("Email address (optional)", exact=True).fill(payer_email(journey))
    submit(journey, "Continue", label)


def council_tax_basket(journey: Journey, amount: str = "£12.34") -> None:
    """Start → Council tax → reference → amount → email → check page (no detours)."""
    start(journey)
    choose(journey, "Council tax", "ctax-reference")
    enter_reference(journey, VALID_CTAX, "ctax-amount")
    enter_amount(journey, amount, "email")
    enter_email(journey, "check")
    expect(heading(journey)).to_have_text("Check your payments")


def continue_to_payment(journey: Journey, label: str = "card-details") -> None:
    submit(journey, "Continue to payment", label)
    expect(heading(journey)).to_have_text("Enter card details")
    assert not journey.page.url.startswith(journey.base_url), journey.page.url  # on the emulator's pages


# --- the emulator's hosted card pages -------------------------------------------------------


def enter_card(journey: Journey, card: str, label: str) -> None:
    page = journey.page
    expect(heading(journey)).to_have_text("Enter card details")
    page.get_by_label("Card number", exact=True).fill(card)
    page.get_by_label("Month", exact=True).fill("12")
    page.get_by_label("Year", exact=True).fill("2099")
    page.get_by_label("Name on card", exact=True).fill(f"Test Payer {journey.mode}")
    page.get_by_label("Card security code", exact=True).fill("123")
    page.get_by_label("Address line 1", exact=True).fill("1 Test Street")
    page.get_by_label("Town or city", exact=True).fill("Testtown")
    page.get_by_label("Postcode", exact=True).fill("TE1 1ST")
    submit(journey, "Continue", label)


def pay_by_card(journey: Journey, card: str = GOOD_CARD, prefix: str = "") -> str:
    """Card details → Confirm → back on our outcome page. Returns the payment's return token."""
    enter_card(journey, card, f"{prefix}confirm")
    expect(heading(journey)).to_have_text("Confirm your payment")
    expect(journey.page.locator("main")).to_contain_text(f"Card ending {card[-4:]}")
    submit(journey, "Confirm payment", f"{prefix}payment-complete")
    expect(heading(journey)).to_have_text("Payment complete")
    return return_token(journey)


def return_token(journey: Journey) -> str:
    url = journey.page.url
    assert url.startswith(journey.base_url), url
    found = _RETURN.search(url)
    assert found, url
    return found.group(1)


# --- the database ---------------------------------------------------------------------------


def payment_for(token: str):
    from app.domain.payments import Payment

    return Payment.get(Payment.return_token == token)


def ledger_entries(reference: str) -> list:
    from app.domain.ledger import LedgerEntry

    query = LedgerEntry.select().where(LedgerEntry.source_reference == reference).order_by(LedgerEntry.id)
    return list(query)


def assert_paid_page_shows(journey: Journey, payment, entries) -> None:
    page = journey.page
    expect(page.locator(".govuk-panel")).to_contain_text(payment.reference)
    main = page.locator("main")
    expect(main).to_contain_text(f"We have sent a receipt to {payer_email(journey)}")
    for entry in entries:
        expect(main.locator("table")).to_contain_text(entry.receipt_reference)


# --- journeys -------------------------------------------------------------------------------


def test_pay_for_two_things_journey(journey: Journey, govuk_pay):
    """Council tax (after a wrong reference) and a library charge, paid by card; two ledger entries, receipts."""
    page = journey.page
    library = lib_reference()
    start(journey)
    choose(journey, "Council tax", "ctax-reference")
    expect(heading(journey)).to_have_text("Council tax account number")

    enter_reference(journey, INVALID_CTAX, "ctax-reference-error")
    expect(page).to_have_title(re.compile(r"^Error: Council tax account number"))
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_visible()
    message = summary.locator("li").first.inner_text().strip()
    assert message
    expect(page.locator(".govuk-error-message")).to_contain_text(message)
    if journey.js:
        expect(summary).to_be_focused()
        summary.get_by_role("link").first.click()
        expect(page.get_by_role("textbox")).to_be_focused()

    enter_reference(journey, VALID_CTAX, "ctax-amount")
    expect(page.locator(".govuk-caption-l")).to_contain_text(f"Council tax: {VALID_CTAX}")
    enter_amount(journey, "£1,234.50", "email")
    enter_email(journey, "check-one")
    expect(heading(journey)).to_have_text("Check your payments")
    expect(page.locator("main")).to_contain_text("Total to pay: £1,234.50")

    page.get_by_role("button", name="Add another payment", exact=True).click()
    journey.check("payment-for-2")
    choose(journey, "Library charges", "lib-reference")
    expect(heading(journey)).to_have_text("Library card number")
    enter_reference(journey, library, "lib-amount")
    enter_amount(journey, "2.5", "check-two")

    expect(heading(journey)).to_have_text("Check your payments")
    cards = page.locator(".govuk-summary-card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("Payment 1: Council tax")
    expect(cards.nth(0)).to_contain_text(VALID_CTAX)
    expect(cards.nth(0)).to_contain_text("£1,234.50")
    expect(cards.nth(1)).to_contain_text("Payment 2: Library charges")
    expect(cards.nth(1)).to_contain_text(library)
    expect(cards.nth(1)).to_contain_text("£2.50")
    expect(page.locator("main")).to_contain_text(payer_email(journey))
    expect(page.locator("main")).to_contain_text("Total to pay: £1,237.00")

    continue_to_payment(journey)
    expect(page.locator("main")).to_contain_text("£1,237.00")
    token = pay_by_card(journey)

    payment = payment_for(token)
    assert (payment.status, payment.amount_pence, payment.card_last_digits) == ("succeeded", 123_700, "1111")
    entries = ledger_entries(payment.reference)
    assert [(e.fund.code, e.account_reference, e.amount_pence, e.source) for e in entries] == [
        ("CTAX", VALID_CTAX, 123_450, "payment"),
        ("LIB", library, 250, "payment"),
    ]
    assert all(e.payer_email == payer_email(journey) for e in entries)
    assert_paid_page_shows(journey, payment, entries)
    expect(page.locator("main")).to_contain_text("Paid by card ending 1111")

    # GOV.UK Pay's webhooks reach the server after the payer is back: they post nothing more.
    delivered = govuk_pay.deliver_due_webhooks()
    assert "card_payment_succeeded" in [attempt["event_type"] for attempt in delivered], delivered
    assert all(attempt["status"] == 200 for attempt in delivered), delivered
    assert len(ledger_entries(payment.reference)) == 2


def test_declined_card_then_try_again_journey(journey: Journey, govuk_pay):
    """A declined card: the emulator's page, our declined page, Try again with a good card, paid once."""
    page = journey.page
    council_tax_basket(journey, "£45.60")
    continue_to_payment(journey)
    enter_card(journey, DECLINED_CARD, "declined-on-pay")
    expect(heading(journey)).to_have_text("Your payment has been declined")
    submit(journey, "Continue", "declined")  # a link styled as a button
    expect(heading(journey)).to_have_text("Your payment was declined")
    declined = payment_for(return_token(journey))
    assert (declined.status, declined.outcome) == ("failed", "declined")
    assert ledger_entries(declined.reference) == []
    expect(page.locator("main")).to_contain_text("No money has been taken")

    submit(journey, "Try again", "card-details-again")
    expect(heading(journey)).to_have_text("Enter card details")
    token = pay_by_card(journey, prefix="retry-")
    paid = payment_for(token)
    assert paid.retry_of_id == declined.id and paid.status == "succeeded"
    entries = ledger_entries(paid.reference)
    assert [(e.fund.code, e.amount_pence) for e in entries] == [("CTAX", 4_560)]
    assert_paid_page_shows(journey, paid, entries)


def test_cancel_on_the_card_page_journey(journey: Journey, govuk_pay):
    """Cancel on the emulator's card page: our cancelled page, then Change your payments back to the basket."""
    page = journey.page
    council_tax_basket(journey, "£7.89")
    continue_to_payment(journey)
    submit(journey, "Cancel payment", "cancelled-on-pay")
    expect(heading(journey)).to_have_text("Your payment has been cancelled")
    submit(journey, "Continue", "cancelled")
    expect(heading(journey)).to_have_text("You cancelled your payment")
    cancelled = payment_for(return_token(journey))
    assert cancelled.status == "cancelled"
    assert ledger_entries(cancelled.reference) == []

    submit(journey, "Change your payments", "check-again")
    expect(heading(journey)).to_have_text("Check your payments")
    assert page.url == f"{journey.base_url}/pay/check"
    card = page.locator(".govuk-summary-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text(VALID_CTAX)
    expect(card).to_contain_text("£7.89")
    expect(page.locator("main")).to_contain_text(payer_email(journey))


def test_back_button_after_paying_journey(journey: Journey, govuk_pay):
    """The browser's back button after paying leads to the outcome every time, never to another payment."""
    from app.domain.payments import Payment

    page = journey.page
    council_tax_basket(journey, "£3.21")
    continue_to_payment(journey)
    token = pay_by_card(journey)
    paid = payment_for(token)
    before = Payment.select().count()

    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if request.is_navigation_request() else None)
    # Back through the confirm page and the card page (the emulator sends a finished payment back to
    # the service) to our check page, which now redirects to the payment's status.
    for step in range(1, 4):
        page.go_back()
        journey.check(f"back-{step}")
        expect(heading(journey)).to_have_text("Payment complete")
        assert return_token(journey) == token
        if f"{journey.base_url}/pay/check" in asked:
            break
    assert f"{journey.base_url}/pay/check" in asked, asked
    assert Payment.select().count() == before
    assert [(e.fund.code, e.amount_pence) for e in ledger_entries(paid.reference)] == [("CTAX", 321)]

    # Start now again: a new, empty basket (the paid one is not offered again).
    start(journey)
    expect(page.get_by_label("Council tax", exact=True)).not_to_be_checked()


def test_staff_card_payments_journey(journey: Journey, govuk_pay):
    """A citizen pays (declined first); a finance officer finds both attempts and reads the status history."""
    page = journey.page
    council_tax_basket(journey, "£65.43")
    continue_to_payment(journey)
    enter_card(journey, DECLINED_CARD, "declined-on-pay")
    submit(journey, "Continue", "declined")  # a link styled as a button
    declined = payment_for(return_token(journey))
    submit(journey, "Try again", "card-details-again")
    paid = payment_for(pay_by_card(journey, prefix="retry-"))
    govuk_pay.deliver_due_webhooks()

    sign_in(journey, "finance@demo.example.gov.uk")
    follow(journey, "Card payments", "card-payments", within="header")
    expect(heading(journey)).to_have_text("Card payments")
    rows = page.locator("#results tbody tr")
    expect(rows.first).to_contain_text(paid.reference)  # newest first
    expect(rows.first).to_contain_text("Paid")

    page.get_by_label("Payment or account reference", exact=True).fill(declined.reference)
    filter_results(journey, "Search", "/payments", "card-payments-searched")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Failed")
    expect(rows.first).to_contain_text("£65.43")
    rows.first.get_by_role("link", name=declined.reference, exact=True).click()
    journey.check("declined-attempt")
    expect(heading(journey)).to_have_text(f"Payment {declined.reference}")
    expect(page.locator(".govuk-summary-list")).to_contain_text(f"Payment {paid.reference}")  # tried again as

    follow(journey, f"Payment {paid.reference}", "paid-attempt")
    expect(heading(journey)).to_have_text(f"Payment {paid.reference}")
    expect(page.locator("main .govuk-tag").first).to_have_text("Paid")
    summary = page.locator(".govuk-summary-list")
    expect(summary).to_contain_text(f"Payment {declined.reference}")  # tries again after
    expect(summary).to_contain_text("Visa ending 1111")
    expect(summary).to_contain_text(payer_email(journey))
    history = page.locator("table", has=page.locator("caption", has_text="Status history"))
    expect(history.locator("tbody tr").first).to_be_visible()
    expect(history).to_contain_text("Citizen returned from GOV.UK Pay")
    expect(history).to_contain_text("Paid")
    items = page.locator("table", has=page.locator("caption", has_text="Items in this payment"))
    receipt = ledger_entries(paid.reference)[0].receipt_reference
    expect(items.get_by_role("link", name=receipt, exact=True)).to_be_visible()
    sign_out(journey)
