"""The finance back office in a real browser, JavaScript on and off; axe checks every page on the way.

Transaction search (filters, sorting, paging, the result count announced), a transaction's page,
its VAT receipt and an e-mailed receipt; cash and cheque payments taken by staff; a refund above the
approval limit approved by a second person; journals, transfers and reversals; allocating suspense.

The server's database is shared by both modes and every browser test, and browser tests commit for
real, so each journey picks payments nobody has touched yet (`untouched_entry`) and suspense items
of its own, and checks what it made rather than counts that another test could change.
"""

from __future__ import annotations

import random
import re

from playwright.sync_api import expect

from tests.e2e.browser import Journey
from tests.e2e.test_journeys import filter_results, follow, heading, sign_in, sign_out, submit

VALID_CTAX = "594580735"
INVALID_CTAX = "594580736"  # the valid one with its check digit changed
FINANCE = "finance@demo.example.gov.uk"
SENIOR = "senior@demo.example.gov.uk"
# Suspense items from the demo data (app/domain/suspense.py DEMO_ITEMS), one per mode, both 8 to 30 days old.
SUSPENSE_REFERENCE = {"js": "DB1234567", "nojs": "61234567893"}
_USED: set[int] = set()


# --- the database ---------------------------------------------------------------------------


def untouched_entry(fund_codes: tuple[str, ...], min_pence: int = 100):
    """A demo payment in one of `fund_codes`, of at least `min_pence`, that nothing refunds or corrects."""
    from app.domain.funds import Fund
    from app.domain.ledger import LedgerEntry
    from app.domain.refunds import Refund
    from app.domain.suspense import SuspenseItem

    query = (
        LedgerEntry.select()
        .join(Fund, on=(LedgerEntry.fund == Fund.id))
        .where(
            Fund.code.in_(fund_codes)
            & (LedgerEntry.amount_pence >= min_pence)
            & LedgerEntry.idempotency_key.startswith("demo-seed-")
            & LedgerEntry.corrects.is_null()
        )
        .order_by(LedgerEntry.id)
    )
    for entry in query:
        if entry.id in _USED or list(LedgerEntry.linked(entry)):
            continue
        if Refund.select().where(Refund.entry == entry.id).exists():
            continue
        if SuspenseItem.select().where(SuspenseItem.ledger_entry == entry.id).exists():
            continue
        _USED.add(entry.id)
        return entry
    raise AssertionError(f"no untouched payment of at least {min_pence}p in {fund_codes}")


def valid_reference(fund_code: str, seed: int = 3) -> str:
    from app.domain.references.demo import generate_valid_reference

    return generate_valid_reference(fund_code, random.Random(seed), channel="staff")


def pounds(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def money(pence: int) -> str:
    from app.domain.money import format_pence

    return format_pence(pence)


# --- helpers ----------------------------------------------------------------------------------


def banner(journey: Journey):
    return journey.page.locator(".govuk-notification-banner")


def in_results(journey: Journey, link, label: str):
    """Follow a link inside #results: htmx (hx-boost) swaps the results with JavaScript on."""
    page = journey.page
    if journey.js:
        with page.expect_response(lambda r: "/transactions" in r.url and r.request.headers.get("hx-request") == "true"):
            link.click()
        page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")
        return journey.check(label)
    link.click()
    return journey.check(label)


def no_sideways_scroll(journey: Journey, path: str, label: str) -> None:
    """On a phone-sized screen the page does not scroll sideways: wide tables scroll in their own pane."""
    page = journey.page
    page.set_viewport_size({"width": 375, "height": 800})
    try:
        journey.visit(path, label)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a 375px screen"
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def named(visible: str, hidden: str) -> re.Pattern:
    """A link's accessible name: its text then visually hidden words (Chromium may put a space between)."""
    return re.compile(rf"^{re.escape(visible)}\s*{re.escape(hidden.strip())}$")


def go(journey: Journey, visible: str, hidden: str, label: str):
    journey.page.get_by_role("link", name=named(visible, hidden)).first.click()
    return journey.check(label)


def error_summary_links_to(journey: Journey, message: str, field_id: str) -> None:
    """The GOV.UK error summary lists `message`, linking to the field, which shows it too."""
    page = journey.page
    expect(page).to_have_title(re.compile(r"^Error: "))
    summary = page.locator(".govuk-error-summary")
    link = summary.get_by_role("link", name=message)
    expect(link).to_have_attribute("href", f"#{field_id}")
    expect(page.locator(f"#{field_id}")).to_be_visible()
    if journey.js:
        expect(summary).to_be_focused()
        link.click()
        expect(page.locator(f"#{field_id}")).to_be_focused()


def timeline(journey: Journey):
    return journey.page.locator(".moj-timeline")


def open_entry(journey: Journey, receipt: str, label: str = "transaction") -> None:
    journey.visit(f"/transactions/{receipt}", label)
    expect(heading(journey)).to_have_text(f"Receipt {receipt}")


def fill_line(page, n: int, fund: str | None, reference: str, amount: str) -> None:
    if fund is not None:
        page.get_by_label(f"Fund for line {n}", exact=True).select_option(label=fund)
    page.get_by_label(f"Reference for line {n}", exact=True).fill(reference)
    page.get_by_label(f"Amount for line {n}", exact=True).fill(amount)


# --- 1. transaction search --------------------------------------------------------------------


def test_transaction_search_journey(journey: Journey):
    """Page through, sort by amount, filter by every kind of filter, open a receipt, print it, e-mail it."""
    page = journey.page
    target = untouched_entry(("CTAX", "NNDR", "PCN", "LIB", "SUNDRY"))
    sign_in(journey, FINANCE)
    follow(journey, "Transactions", "transactions", within="header")
    expect(heading(journey)).to_have_text("Transactions")
    status = page.locator("#results-status")
    expect(status).to_have_attribute("role", "status")  # a polite live region: read out when it changes
    expect(status).to_have_text(re.compile(r"^\s*[\d,]+ entries found\s*$"))
    caption = page.locator("#results caption")
    expect(caption).to_contain_text("Showing 1 to 50 of")

    in_results(journey, page.get_by_role("link", name="Next page"), "transactions-page-2")
    expect(caption).to_contain_text("Showing 51 to 100 of")
    assert "page=2" in page.url

    in_results(
        journey, page.get_by_role("link", name=named("Amount", ", sort by this column")), "transactions-by-amount"
    )
    amount_header = page.locator("#results th", has_text="Amount")
    expect(amount_header).to_have_attribute("aria-sort", "ascending")
    expect(caption).to_contain_text("Showing 1 to 50 of")  # a new sort starts at the first page
    shown = [_pence(text) for text in page.locator("#results tbody td:nth-child(6)").all_inner_texts()]
    assert shown == sorted(shown), shown
    assert "sort=amount" in page.url and "direction=asc" in page.url

    # Every filter at once, made to find the target payment.
    day = target.business_date
    for legend, date in (("From date", day), ("To date", day)):
        group = page.get_by_role("group", name=legend)
        group.get_by_label("Day", exact=True).fill(str(date.day))
        group.get_by_label("Month", exact=True).fill(str(date.month))
        group.get_by_label("Year", exact=True).fill(str(date.year))
    page.get_by_label("Fund", exact=True).select_option(label=f"{target.fund.name} ({target.fund.code})")
    page.get_by_text("More filters", exact=False).click()  # a <details>: opens with or without JavaScript
    page.get_by_label("Method of payment", exact=True).select_option(label=target.method.name)
    page.get_by_label("Amount from", exact=True).fill(pounds(target.amount_pence - 1))
    page.get_by_label("Amount to", exact=True).fill(pounds(target.amount_pence))
    page.get_by_label("Payer or narrative contains", exact=True).fill(target.payer_name.split()[0].lower())
    filter_results(journey, "Search", "/transactions", "transactions-filtered")
    rows = page.locator("#results tbody tr")
    expect(rows.get_by_role("link", name=target.receipt_reference, exact=True)).to_be_visible()
    count = rows.count()
    expect(status).to_have_text(re.compile(rf"^\s*{count} entr(y|ies) found\s*$"))
    for row in rows.all():
        cells = row.locator("td").all_inner_texts()
        assert cells[2] == target.fund.name and cells[4] == target.method.name, cells
        assert _pence(cells[5]) in (target.amount_pence - 1, target.amount_pence), cells
    selected = page.locator("#selected-filters")
    expect(selected).to_contain_text(f"Fund: {target.fund.name} ({target.fund.code})")
    expect(selected).to_contain_text(f"Amount to: {money(target.amount_pence)}")
    assert f"fund={target.fund_id}" in page.url  # the filters are in the address, with or without JavaScript
    expect(amount_header).to_have_attribute("aria-sort", "ascending")  # filtering keeps the sort

    rows.get_by_role("link", name=target.receipt_reference, exact=True).click()
    journey.check("transaction")
    receipt = target.receipt_reference
    expect(heading(journey)).to_have_text(f"Receipt {receipt}")
    expect(page.locator(".govuk-summary-list")).to_contain_text(money(target.amount_pence))
    expect(page.get_by_role("heading", name="Put something right")).to_be_visible()
    expect(page.get_by_role("link", name=named("Refund", f"(receipt {receipt})"))).to_be_visible()
    expect(page.get_by_role("link", name=named("Reverse", f"(receipt {receipt})"))).to_be_visible()
    expect(timeline(journey)).to_contain_text("Money taken")
    expect(timeline(journey)).to_contain_text("Recorded in the ledger")

    go(journey, "Print a VAT receipt", f"for {receipt}", "vat-receipt")
    expect(heading(journey)).to_have_text(f"VAT receipt {receipt}")
    expect(page.locator("table")).to_contain_text(money(target.amount_pence))
    expect(page.locator("main")).to_contain_text("Demo Borough Council")
    follow(journey, f"Back to receipt {receipt}", "transaction-again")

    email = f"receipt-{journey.mode}@example.com"
    page.get_by_label("Email address", exact=True).fill("not an address")
    submit(journey, "Email the receipt", "email-receipt-error")
    error_summary_links_to(journey, "Enter an email address in the correct format, like name@example.com", "email")
    page.get_by_label("Email address", exact=True).fill(email)
    submit(journey, "Email the receipt", "receipt-emailed")
    expect(heading(journey)).to_have_text(f"Receipt {receipt}")
    expect(banner(journey)).to_contain_text(f"Receipt sent to {email}")
    expect(timeline(journey)).to_contain_text("Receipt e-mailed")
    expect(timeline(journey)).to_contain_text(f"e-mailed to {email}")
    no_sideways_scroll(journey, "/transactions?sort=amount&direction=desc", "transactions-narrow")
    sign_out(journey)


def _pence(text: str) -> int:
    text = text.strip().replace("£", "").replace(",", "")
    sign = -1 if text.startswith("-") else 1
    pounds_, pence = text.lstrip("-").split(".")
    return sign * (int(pounds_) * 100 + int(pence))


# --- 2. payments taken by staff ---------------------------------------------------------------


def test_staff_payments_journey(journey: Journey):
    """Cash (after a wrong reference) and a cheque for council tax: check page, confirm, receipts."""
    page = journey.page
    sign_in(journey, FINANCE)
    follow(journey, "Take a payment", "take-payment", within="header")
    expect(heading(journey)).to_have_text("Take a payment")

    page.get_by_label("Cash", exact=True).check()
    page.get_by_label("Office", exact=True).select_option(label="Town Hall")
    fill_line(page, 1, "Council tax (CTAX)", INVALID_CTAX, "12.50")
    submit(journey, "Continue", "cash-error")
    expect(heading(journey)).to_have_text("Take a payment")
    message = page.locator(".govuk-error-summary li").first.inner_text().strip()
    assert message.startswith("Line 1"), message
    error_summary_links_to(journey, message, "lines-0-reference")
    expect(page.locator("#lines-0-reference-error")).to_contain_text(message)

    page.get_by_label("Reference for line 1", exact=True).fill(VALID_CTAX)
    page.get_by_label("Payer's name (optional)", exact=True).fill(f"Cash Payer {journey.mode}")
    submit(journey, "Continue", "cash-check")
    expect(heading(journey)).to_have_text("Check the payment")
    table = page.locator("main table")
    expect(table).to_contain_text(VALID_CTAX)
    expect(table.locator("caption")).to_contain_text("Cash: £12.50")
    submit(journey, "Record payment of £12.50", "cash-recorded")
    cash = _staff_payment_page(journey, "£12.50")
    expect(page.locator(".govuk-summary-list")).to_contain_text("Town Hall")

    page.get_by_role("button", name="Take another payment").click()
    journey.check("take-another")
    expect(heading(journey)).to_have_text("Take a payment")
    page.get_by_label("Cheque", exact=True).check()
    page.get_by_label("Cheque number", exact=True).fill("000123")
    page.get_by_label("Sort code", exact=True).fill("30-94-30")
    page.get_by_label("Account number", exact=True).fill("00733445")
    page.get_by_label("Name on the account", exact=True).fill(f"Cheque Drawer {journey.mode}")
    page.get_by_label("Office", exact=True).select_option(label="Customer Service Centre")
    fill_line(page, 1, "Council tax (CTAX)", VALID_CTAX, "45.67")
    page.get_by_label("Payer's email address for a receipt (optional)", exact=True).fill(
        f"cheque-{journey.mode}@example.com"
    )
    submit(journey, "Continue", "cheque-check")
    expect(heading(journey)).to_have_text("Check the payment")
    summary = page.locator(".govuk-summary-list")
    expect(summary).to_contain_text(
        f"Number 000123, sort code 30-94-30, account 00733445, Cheque Drawer {journey.mode}"
    )
    submit(journey, "Record payment of £45.67", "cheque-recorded")
    cheque = _staff_payment_page(journey, "£45.67")
    expect(page.locator(".govuk-summary-list")).to_contain_text("sort code 30-94-30, account 00733445")
    assert cheque != cash

    submit(journey, f"Email the receipt to cheque-{journey.mode}@example.com", "cheque-emailed")
    expect(banner(journey)).to_contain_text(f"Receipt sent to cheque-{journey.mode}@example.com")

    receipt_link = page.locator("main table tbody a").first
    receipt = receipt_link.inner_text()
    receipt_link.click()
    journey.check("cheque-receipt")
    expect(heading(journey)).to_have_text(f"Receipt {receipt}")
    expect(page.locator(".govuk-summary-list")).to_contain_text("Cheque")
    expect(timeline(journey)).to_contain_text("Payment taken by staff")
    expect(timeline(journey).get_by_role("link", name=f"See payment {cheque}", exact=True)).to_be_visible()
    sign_out(journey)


def _staff_payment_page(journey: Journey, amount: str) -> str:
    page = journey.page
    expect(heading(journey)).to_have_text(re.compile(r"^Payment \S+$"))
    reference = heading(journey).inner_text().removeprefix("Payment ")
    expect(banner(journey)).to_contain_text(f"Payment {reference} recorded")
    table = page.locator("main table")
    expect(table.locator("caption")).to_contain_text(f"Receipts: {amount}")
    expect(table).to_contain_text(VALID_CTAX)
    return reference


# --- 3. refunds -------------------------------------------------------------------------------


def test_refund_journey(journey: Journey):
    """A refund over the limit waits; a senior officer approves it; nobody approves their own."""
    page = journey.page
    entry = untouched_entry(("NNDR", "SUNDRY"), min_pence=120_000)
    receipt = entry.receipt_reference
    sign_in(journey, FINANCE)
    open_entry(journey, receipt)
    go(journey, "Refund", f"(receipt {receipt})", "refund")
    expect(heading(journey)).to_have_text(f"Refund receipt {receipt}")
    expect(page.locator("main")).to_contain_text(f"You can refund up to {money(entry.amount_pence)}")
    expect(page.locator("main")).to_contain_text("Refunds over £500.00 need a senior finance officer's approval")

    page.get_by_label("How much to refund", exact=True).fill(pounds(entry.amount_pence + 1))
    page.get_by_label("Why is it being refunded?", exact=True).fill("Paid twice by mistake")
    submit(journey, "Ask for the refund", "refund-too-much")
    error_summary_links_to(journey, f"You can refund up to {money(entry.amount_pence)}", "amount")

    page.get_by_label("How much to refund", exact=True).fill("550.00")
    submit(journey, "Ask for the refund", "refund-asked")
    expect(heading(journey)).to_have_text(re.compile(r"^Refund RFD-"))
    refund = heading(journey).inner_text().removeprefix("Refund ")
    expect(banner(journey)).to_contain_text(f"Refund {refund}: awaiting approval")
    details = page.locator(".govuk-summary-list")
    expect(details).to_contain_text("Awaiting approval")
    expect(details).to_contain_text("£550.00")
    expect(page.locator("main")).to_contain_text("A senior finance officer who did not ask for this refund must")
    expect(page.get_by_role("button", name="Save decision")).to_have_count(0)
    sign_out(journey)

    sign_in(journey, SENIOR)
    follow(journey, "Refunds", "refunds", within="header")
    waiting = page.locator("table", has=page.locator("caption", has_text="Awaiting approval"))
    waiting.get_by_role("link", name=refund, exact=True).click()
    journey.check("refund-to-decide")
    expect(heading(journey)).to_have_text(f"Refund {refund}")
    submit(journey, "Save decision", "refund-decision-error")
    error_summary_links_to(journey, "Select whether you approve the refund", "decision")
    page.get_by_label("Yes, approve it", exact=True).check()
    submit(journey, "Save decision", "refund-approved")
    expect(banner(journey)).to_contain_text(f"Refund {refund}: to pay by bacs")
    details = page.locator(".govuk-summary-list")
    expect(details).to_contain_text("To pay by BACS")
    expect(details).to_contain_text("Chloe Evans")

    # The senior officer asks for a refund of the rest: over the limit, so someone else must approve it.
    follow(journey, f"Receipt {receipt}", "refunded-transaction")
    expect(timeline(journey).get_by_role("link", name=f"See refund {refund}", exact=True)).to_be_visible()
    go(journey, "Refund", f"(receipt {receipt})", "refund-again")
    left = entry.amount_pence - 55_000
    expect(page.locator("main")).to_contain_text(f"You can refund up to {money(left)}")
    page.get_by_label("How much to refund", exact=True).fill(pounds(left))
    page.get_by_label("Why is it being refunded?", exact=True).fill("The account was closed")
    submit(journey, "Ask for the refund", "own-refund")
    expect(details).to_contain_text("Awaiting approval")
    expect(page.locator("main")).to_contain_text("You asked for this refund, so another senior finance officer")
    expect(page.get_by_role("button", name="Save decision")).to_have_count(0)
    sign_out(journey)


# --- 4. corrections ---------------------------------------------------------------------------


def test_corrections_journey(journey: Journey):
    """A journal to another fund, a transfer that does not balance then does, a reversal."""
    page = journey.page
    library = valid_reference("LIB")
    sign_in(journey, FINANCE)

    # Journal: move part of a payment to council tax account VALID_CTAX.
    source = untouched_entry(("NNDR", "PCN", "SUNDRY"), min_pence=3_000)
    receipt = source.receipt_reference
    open_entry(journey, receipt, "journal-source")
    go(journey, "Move to another fund or reference (journal)", f"(receipt {receipt})", "journal")
    expect(heading(journey)).to_have_text(f"Move money from receipt {receipt}")
    page.get_by_label("Fund to move the money to", exact=True).select_option(label="Council tax (CTAX)")
    page.get_by_label("Reference to move the money to", exact=True).fill(VALID_CTAX)
    page.get_by_label("Amount to move", exact=True).fill(pounds(source.amount_pence + 1))
    page.get_by_label("Why are you moving it?", exact=True).fill("Paid to the wrong account")
    submit(journey, "Continue", "journal-too-much")
    message = page.locator(".govuk-error-summary li").first.inner_text().strip()
    error_summary_links_to(journey, message, "amount")
    page.get_by_label("Amount to move", exact=True).fill("12.34")
    submit(journey, "Continue", "journal-check")
    expect(heading(journey)).to_have_text(f"Check the journal from receipt {receipt}")
    expect(page.locator("main")).to_contain_text(money(source.amount_pence - 1234))  # left afterwards
    submit(journey, "Move the money", "journal-made")
    journal = _confirmation(journey, "Journal made", r"JNL-")
    expect(page.locator("main")).to_contain_text(f"£12.34 has been moved from receipt {receipt}")
    new_receipts = _new_receipts(journey)
    follow(journey, f"Back to receipt {receipt}", "journal-timeline")
    for made in new_receipts:
        expect(timeline(journey).get_by_role("link", name=f"See receipt {made}", exact=True)).to_be_visible()
    del journal

    # Transfer: lines that do not add up to £0.00, then lines that do.
    follow(journey, "Corrections", "corrections", within="header")
    follow(journey, "Make a transfer", "transfer")
    expect(heading(journey)).to_have_text("Make a transfer")
    fill_line(page, 1, "Council tax (CTAX)", VALID_CTAX, "-5.00")
    fill_line(page, 2, "Library charges (LIB)", library, "4.00")
    page.get_by_label("Why are you making the transfer?", exact=True).fill("Library fine paid to council tax")
    submit(journey, "Continue", "transfer-unbalanced")
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("£0.00")
    expect(summary.get_by_role("link").first).to_have_attribute("href", "#lines")
    expect(page.locator("#lines .govuk-error-message")).to_contain_text("£0.00")
    page.get_by_label("Amount for line 2", exact=True).fill("5.00")
    submit(journey, "Continue", "transfer-check")
    expect(heading(journey)).to_have_text("Check the transfer")
    lines = page.locator("main table")
    expect(lines).to_contain_text("-£5.00")
    expect(lines).to_contain_text(library)
    submit(journey, "Make the transfer", "transfer-made")
    transfer = _confirmation(journey, "Transfer made", r"TRF-")
    transfer_receipts = _new_receipts(journey)
    assert len(transfer_receipts) == 2, transfer_receipts
    page.get_by_role("link", name=transfer_receipts[1], exact=True).click()
    journey.check("transfer-timeline")
    expect(heading(journey)).to_have_text(f"Receipt {transfer_receipts[1]}")
    expect(page.locator(".govuk-summary-list")).to_contain_text(transfer)  # the group reference
    expect(
        timeline(journey).get_by_role("link", name=f"See receipt {transfer_receipts[0]}", exact=True)
    ).to_be_visible()

    # Reversal of a whole payment.
    reversed_ = untouched_entry(("CTAX", "PCN", "LIB"))
    receipt = reversed_.receipt_reference
    open_entry(journey, receipt, "reversal-source")
    go(journey, "Reverse", f"(receipt {receipt})", "reverse")
    expect(heading(journey)).to_have_text(f"Reverse receipt {receipt}")
    submit(journey, "Continue", "reverse-error")
    error_summary_links_to(journey, "Enter the reason for the correction", "reason")
    page.get_by_label("Why are you reversing it?", exact=True).fill("The cheque was returned unpaid")
    submit(journey, "Continue", "reverse-check")
    expect(heading(journey)).to_have_text(f"Check the reversal of receipt {receipt}")
    expect(page.locator(".govuk-warning-text")).to_contain_text("You cannot undo a reversal")
    submit(journey, "Reverse the payment", "reversal-made")
    _confirmation(journey, "Reversal made", r"REV-")
    expect(page.locator("main")).to_contain_text(
        f"{money(reversed_.amount_pence)} has been taken off receipt {receipt}"
    )
    (reversal,) = _new_receipts(journey)
    follow(journey, f"Back to receipt {receipt}", "reversal-timeline")
    expect(timeline(journey).get_by_role("link", name=f"See receipt {reversal}", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=named("Reverse", f"(receipt {receipt})"))).to_have_count(0)
    sign_out(journey)


def _confirmation(journey: Journey, title: str, prefix: str) -> str:
    panel = journey.page.locator(".govuk-panel")
    expect(heading(journey)).to_have_text(title)
    expect(panel).to_contain_text(re.compile(rf"Your reference\s*{prefix}"))
    return panel.locator("strong").inner_text()


def _new_receipts(journey: Journey) -> list[str]:
    table = journey.page.locator("table", has=journey.page.locator("caption", has_text="New entries in the ledger"))
    return table.locator("tbody tr td:first-child a").all_inner_texts()


# --- 5. suspense ------------------------------------------------------------------------------


def test_suspense_journey(journey: Journey):
    """Filter by age, open an item, add a note, split it across two funds (after asking for too much)."""
    page = journey.page
    library = valid_reference("LIB", seed=5)
    sign_in(journey, FINANCE)
    follow(journey, "Suspense", "suspense", within="header")
    expect(heading(journey)).to_have_text("Suspense")
    page.get_by_label("Age", exact=True).select_option(label="8 to 30 days")
    filter_results(journey, "Search", "/suspense", "suspense-8-to-30-days")
    rows = page.locator("#results tbody tr")
    expect(rows.first).to_be_visible()
    for age in page.locator("#results tbody td:nth-child(3)").all_inner_texts():
        days = int(age.split()[0])
        assert 8 <= days <= 30, age
    assert "age=8-30" in page.url
    expect(page.locator("#results-status")).to_have_text(re.compile(r"^\s*\d+ items? found\s*$"))

    row = rows.filter(has_text=SUSPENSE_REFERENCE[journey.mode])
    item = row.get_by_role("link").first.inner_text()
    row.get_by_role("link").first.click()
    journey.check("suspense-item")
    expect(heading(journey)).to_have_text(f"Suspense {item.lower()}")
    details = page.locator(".govuk-summary-list")
    expect(details).to_contain_text(SUSPENSE_REFERENCE[journey.mode])
    left = _pence(details.locator(".govuk-summary-list__row", has_text="Left to allocate").locator("dd").inner_text())

    submit(journey, "Add note", "suspense-note-error")
    error_summary_links_to(journey, "Enter a note", "text")
    note = f"Phoned the payer ({journey.mode}): it is council tax and a library fine"
    page.get_by_label("Add a note", exact=True).fill(note)
    submit(journey, "Add note", "suspense-note-added")
    expect(banner(journey)).to_contain_text("Note added")
    expect(page.locator("main")).to_contain_text(note)

    submit(journey, "Allocate this money", "allocate")
    expect(heading(journey)).to_have_text(f"Allocate suspense {item.lower()}")
    first = left // 2
    fill_line(page, 1, "Council tax (CTAX)", VALID_CTAX, pounds(first))
    fill_line(page, 2, "Library charges (LIB)", library, pounds(left - first + 1_000))
    submit(journey, "Continue", "allocate-too-much")
    message = page.locator(".govuk-error-summary li").first.inner_text().strip()
    assert message == f"The lines add up to {money(left + 1_000)}: you can allocate up to {money(left)}", message
    error_summary_links_to(journey, message, "lines-0-amount")

    page.get_by_label("Amount for line 2", exact=True).fill(pounds(left - first))
    page.get_by_label("How the money was identified (optional)", exact=True).fill("The payer phoned")
    submit(journey, "Continue", "allocate-check")
    expect(heading(journey)).to_have_text("Check the allocation")
    table = page.locator("main table")
    expect(table).to_contain_text(VALID_CTAX)
    expect(table).to_contain_text(library)
    expect(page.locator(".govuk-summary-list")).to_contain_text("Left in suspense after")
    submit(journey, f"Allocate {money(left)}", "allocated")
    expect(heading(journey)).to_have_text(f"Suspense {item.lower()}")
    expect(banner(journey)).to_contain_text(f"{money(left)} allocated from suspense {item.lower()}")
    allocation = page.locator("main table").first
    expect(allocation).to_contain_text(VALID_CTAX)
    expect(allocation).to_contain_text(library)
    expect(allocation).to_contain_text(money(first))
    expect(allocation).to_contain_text(money(left - first))
    expect(page.get_by_role("button", name="Allocate this money")).to_have_count(0)
    no_sideways_scroll(journey, "/suspense?status=all", "suspense-narrow")
    sign_out(journey)
