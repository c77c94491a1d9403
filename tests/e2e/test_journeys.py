"""Key journeys in a real browser, each with JavaScript on and off; axe checks every page on the way."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import LOCKOUT_USERS, AccessibilityFailure, Journey
from tests.pages import DEMO_PASSWORD


def heading(journey: Journey):
    return journey.page.locator("h1")


def submit(journey: Journey, name: str, label: str | None = None):
    """Press a form's button and check the page that comes back."""
    journey.page.get_by_role("button", name=name, exact=True).click()
    return journey.check(label)


def follow(journey: Journey, name: str, label: str | None = None, *, within: str | None = None):
    scope = journey.page.locator(within) if within else journey.page
    scope.get_by_role("link", name=name, exact=True).first.click()
    return journey.check(label)


def filter_results(journey: Journey, button: str, path: str, label: str):
    """Apply a GET filter: htmx swaps the results in with JavaScript on, a normal page load without."""
    page = journey.page
    if journey.js:
        with page.expect_response(lambda r: path in r.url and r.request.headers.get("hx-request") == "true"):
            page.get_by_role("button", name=button, exact=True).click()
        page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")
        return journey.check(label)
    return submit(journey, button, label)


def sign_in(journey: Journey, email: str, password: str = DEMO_PASSWORD) -> None:
    page = journey.visit("/sign-in", "sign-in")
    expect(heading(journey)).to_have_text("Sign in")
    page.get_by_label("E-mail address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    submit(journey, "Sign in", "staff-home")


def sign_out(journey: Journey) -> None:
    submit(journey, "Sign out", "signed-out")
    expect(heading(journey)).to_have_text("You have signed out")


def test_public_journey(journey: Journey):
    """Start page, accessibility, cookies, privacy, feedback with an error then sent, the 404 page."""
    page = journey.visit("/", "start")
    expect(heading(journey)).to_have_text("Pay Demo Borough Council")
    expect(page).to_have_title(re.compile(r"^Pay Demo Borough Council – "))

    follow(journey, "Accessibility statement", "accessibility", within="footer")
    expect(heading(journey)).to_contain_text("Accessibility statement")
    follow(journey, "Cookies", "cookies", within="footer")
    expect(heading(journey)).to_have_text("Cookies")
    follow(journey, "Privacy", "privacy", within="footer")
    expect(heading(journey)).to_have_text("Privacy notice")

    follow(journey, "give your feedback", "feedback")
    expect(heading(journey)).to_have_text("Give feedback on Pay Demo Borough Council")
    page.get_by_label("How could we improve this service?", exact=True).fill(f"Tried it with JavaScript {journey.mode}")
    submit(journey, "Send feedback", "feedback-error")
    expect(page).to_have_title(re.compile(r"^Error: Give feedback"))
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Select how satisfied you are with this service")
    if journey.js:
        expect(summary).to_be_focused()  # GOV.UK Frontend moves focus to the summary

    summary.get_by_role("link", name="Select how satisfied you are with this service").click()
    page.get_by_label("Satisfied", exact=True).check()
    submit(journey, "Send feedback", "feedback-sent")
    expect(heading(journey)).to_have_text("Feedback sent")

    journey.visit("/no-such-page", "not-found")
    expect(heading(journey)).to_have_text("Page not found")


def test_staff_journey(journey: Journey):
    """An administrator adds a fund (after an error) and a user, disables the fund, reads the audit trail."""
    page = journey.page
    code = f"E2E{journey.mode.upper()}"
    sign_in(journey, "admin@demo.example.gov.uk")
    expect(heading(journey)).to_have_text("Income management")

    follow(journey, "Settings", "settings", within="header")
    expect(heading(journey)).to_have_text("Settings")
    follow(journey, "Funds", "funds")
    expect(heading(journey)).to_have_text("Funds")
    follow(journey, "Add a fund", "fund-add")
    expect(heading(journey)).to_have_text("Add a fund")

    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_label("VAT code", exact=True).select_option(label="O – Outside the scope of VAT")
    page.get_by_label("Minimum amount", exact=True).fill("£1.00")
    submit(journey, "Continue", "fund-add-error")
    expect(page).to_have_title(re.compile(r"^Error: Add a fund"))
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter the name of the fund")

    page.get_by_label("Name", exact=True).fill(f"Browser test fund ({journey.mode})")
    submit(journey, "Continue", "fund-check")
    expect(heading(journey)).to_have_text("Check the new fund")
    submit(journey, "Add fund", "fund-added")
    expect(heading(journey)).to_have_text(f"Fund {code} Browser test fund ({journey.mode})")
    expect(page.locator(".govuk-notification-banner")).to_contain_text(f"Fund {code} Browser test fund")

    page.get_by_role("link", name=re.compile(r"^Disable")).click()
    journey.check("fund-disable")
    expect(heading(journey)).to_have_text(f"Disable fund {code}?")
    submit(journey, "Yes, disable fund", "fund-disabled")
    expect(page.locator(".govuk-summary-list")).to_contain_text("Disabled")

    follow(journey, "Users", "users", within="header")
    expect(heading(journey)).to_have_text("Users")
    follow(journey, "Add a user", "user-add")
    page.get_by_label("Full name", exact=True).fill(f"Browser Tester {journey.mode}")
    page.get_by_label("E-mail address", exact=True).fill(f"browser.{journey.mode}@demo.example.gov.uk")
    page.get_by_label("Auditor", exact=True).check()
    page.get_by_label("All funds", exact=True).check()
    submit(journey, "Continue", "user-check")
    expect(heading(journey)).to_have_text("Check the new user's details")
    submit(journey, "Add user", "user-added")
    expect(heading(journey)).to_have_text(f"User added: Browser Tester {journey.mode}")
    expect(page.locator(".app-hash")).to_have_text(re.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$"))

    follow(journey, "Audit trail", "audit", within="header")
    expect(heading(journey)).to_have_text("Audit trail")
    page.get_by_label("User e-mail contains", exact=True).fill("admin@")
    page.get_by_label("What happened", exact=True).select_option("user.create")
    filter_results(journey, "Apply filters", "/audit", "audit-filtered")
    rows = page.locator("#results tbody tr")
    expect(rows.first).to_contain_text(f"Added user browser.{journey.mode}@demo.example.gov.uk")
    # Both runs (JavaScript on and off) add a user to the same server, so the count is 1 or 2.
    expect(page.locator("#results-status")).to_have_text(re.compile(r"^\s*[12] events? found\s*$"))
    assert "actor=admin" in page.url  # the filter is in the address, with or without JavaScript

    rows.first.get_by_role("link").click()
    journey.check("audit-event")
    expect(heading(journey)).to_have_text(re.compile(r"^Audit event \d+$"))
    expect(page.locator("table")).to_contain_text(f"browser.{journey.mode}@demo.example.gov.uk")

    sign_out(journey)


def test_finance_journey(journey: Journey):
    """A finance officer filters transactions by fund and opens a receipt."""
    page = journey.page
    sign_in(journey, "finance@demo.example.gov.uk")
    follow(journey, "Transactions", "transactions", within="header")
    expect(heading(journey)).to_have_text("Transactions")
    expect(page.locator("#results tbody tr").first).to_be_visible()

    page.get_by_label("Fund", exact=True).select_option(label="Council tax (CTAX)")
    filter_results(journey, "Search", "/transactions", "transactions-ctax")
    fund_cells = page.locator("#results tbody tr td:nth-child(3)")
    expect(fund_cells.first).to_have_text("Council tax")
    assert set(fund_cells.all_inner_texts()) == {"Council tax"}

    receipt = page.locator("#results tbody tr").first.get_by_role("link").first
    reference = receipt.inner_text()
    receipt.click()
    journey.check("receipt")
    expect(heading(journey)).to_have_text(f"Receipt {reference}")
    expect(page.locator(".govuk-summary-list")).to_contain_text("Council tax (CTAX)")

    sign_out(journey)


def test_sign_in_errors_journey(journey: Journey):
    """The sign-in errors, then the locked-account message after five wrong passwords."""
    page = journey.page
    email = LOCKOUT_USERS[journey.mode]
    journey.visit("/sign-in", "sign-in")
    submit(journey, "Sign in", "sign-in-empty")
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter your e-mail address")

    for attempt in range(5):
        page.get_by_label("E-mail address", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_role("button", name="Sign in", exact=True).click()
        journey.check("sign-in-wrong-password", screenshot=attempt == 0)
        expect(page).to_have_title(re.compile(r"^Error: Sign in"))
        expect(page.locator(".govuk-error-summary")).to_contain_text("Enter a correct e-mail address and password")

    page.get_by_label("E-mail address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    submit(journey, "Sign in", "sign-in-locked")
    expect(page.locator(".govuk-error-summary")).to_contain_text("Your account is locked after 5 failed sign-ins")
    expect(heading(journey)).to_have_text("Sign in")


BROKEN_PAGE = """<!DOCTYPE html><html lang="en"><head><title>Broken</title></head>
<body><main><h1>Broken</h1><img src="/council-logo"><form><input type="text" name="x"></form></main></body></html>"""


def test_the_axe_check_catches_violations(journey: Journey):
    """The harness itself: a page with known violations must fail the check, with JavaScript on and off."""
    url = journey.base_url + "/axe-self-test"
    journey.page.route(url, lambda route: route.fulfill(status=200, content_type="text/html", body=BROKEN_PAGE))
    with pytest.raises(AccessibilityFailure) as failure:
        journey.visit("/axe-self-test", "axe-self-test")
    assert "image-alt" in str(failure.value)
    assert "label" in str(failure.value)
