"""Reference validation pages in a real browser, JavaScript on and off, axe on every page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.browser import Journey
from tests.e2e.test_journeys import filter_results, heading, sign_in, sign_out, submit

# The demo council tax rule is modulus 10 with weights: a valid reference and the same with its check digit changed.
VALID_CTAX = "594580735"
INVALID_CTAX = "594580736"


def test_reference_rules_journey(journey: Journey):
    """Administrator: reference rules, a fund's formats, try a reference, check digits, API keys, account upload."""
    page = journey.page
    sign_in(journey, "admin@demo.example.gov.uk")
    journey.visit("/admin/settings/references", "references")
    page.get_by_role("link", name="Council tax (CTAX)", exact=True).click()
    journey.check("ctax-rule")

    journey.visit("/admin/settings/references", "references-again")
    page.get_by_role("link", name="Try a reference for Council tax", exact=True).click()
    journey.check("try")
    page.get_by_label("Council tax account number").fill(f" {VALID_CTAX[:4]} {VALID_CTAX[4:]} ")
    submit(journey, "Try reference", "try-valid")
    expect(page.locator("main")).to_contain_text("Passed")
    expect(page.locator("main")).not_to_contain_text("Failed")
    page.get_by_label("Council tax account number").fill(INVALID_CTAX)
    submit(journey, "Try reference", "try-invalid")
    expect(page.locator("main")).to_contain_text("Failed")

    journey.visit("/admin/settings/references/check-digits", "check-digits")
    journey.visit("/admin/api-keys", "api-keys")
    journey.visit("/admin/api-keys/add", "api-key-add")
    submit(journey, "Continue", "api-key-add-error")
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    journey.visit("/accounts/upload", "accounts-upload")
    submit(journey, "Load account holders", "accounts-upload-error")
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    sign_out(journey)


def test_accounts_journey(journey: Journey):
    """Senior finance officer: search account holders, open one on stop, the override page with an error."""
    page = journey.page
    sign_in(journey, "senior@demo.example.gov.uk")
    journey.visit("/accounts", "accounts")
    expect(heading(journey)).to_contain_text("Account")
    filter_results(journey, "Search", "/accounts", "accounts-searched")
    stopped = page.locator("#results tbody tr", has_text="On stop").first
    stopped.get_by_role("link").first.click()
    journey.check("account-on-stop")
    page.get_by_role("link", name="Override the stop").first.click()
    journey.check("stop-override")
    submit(journey, "Override the stop", "stop-override-error")
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    sign_out(journey)
