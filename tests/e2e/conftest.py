"""Browser tests: the app on a real HTTP server, Debian's Chromium driven by Playwright, axe on every page.

- The server is werkzeug's, in a background thread, on 127.0.0.1 and a free port, with its own
  migrated and seeded SQLite file (create_app("testing")). Browser tests commit for real, so each
  test uses names of its own (codes, e-mail addresses) rather than rolling back.
- Chromium is /usr/bin/chromium (apt-get install chromium). Never let Playwright download a browser of its own.
- `Journey.check()` runs axe-core (WCAG 2.0/2.1/2.2 A and AA tags, no rule disabled) on the page
  and saves a full-page screenshot to test-results/screenshots/. A page seen with JavaScript off
  is checked by loading its HTML (scripts removed) into a JavaScript-enabled page at the same URL.
- Card payments go to the session's GOV.UK Pay emulator on a real port (`live_govuk_pay_emulator`,
  tests/govuk_pay_emulator.py), so the browser walks its hosted card pages too. The app is pointed at
  it before the server starts. The emulator's webhooks are off (recorded, never sent) unless a test
  asks for them with the `govuk_pay` fixture, which sends them to this server's /webhooks/govuk-pay.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, LOCKOUT_USERS, MODES, SCREENSHOTS, Journey
from tests.pages import DEMO_PASSWORD


@pytest.fixture(scope="session")
def e2e_server(tmp_path_factory, app_factory, live_govuk_pay_emulator):
    """The app on http://127.0.0.1:PORT with a database of its own. Yields (base_url, peewee database)."""
    from app.domain.users import create_user
    from app.integrations.govuk_pay.accounts import PayGateway

    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'ims.db'}"
    app, db = app_factory(url, ledger_entries=120)
    for email in LOCKOUT_USERS.values():
        user, _ = create_user(
            None, email=email, name="Lockout Tester", roles=["auditor"], fund_group_ids=[], password=DEMO_PASSWORD
        )
        user.must_change_password = False
        user.save()
    db.close()  # the server's threads open their own connections
    # GOV.UK Pay is the live emulator (TestingConfig's accounts are the emulator's test accounts); the
    # check page's CSP form-action must allow the redirect to its card pages. Set before serving.
    pay_url = live_govuk_pay_emulator.base_url
    app.extensions["govuk_pay"] = PayGateway(app.config["GOVUK_PAY_ACCOUNTS"], pay_url)
    app.config["GOVUK_PAY_PAGE_ORIGIN"] = pay_url

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", db
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def govuk_pay(e2e_server, live_govuk_pay_emulator):
    """The live emulator, reset, with its webhooks sent for real (httpx) to the e2e server's /webhooks/govuk-pay.

    Nothing is sent until the test calls `deliver_due_webhooks()` (no background delivery).
    """
    from app.integrations.govuk_pay.emulator.settings import httpx_webhook_sender

    live = live_govuk_pay_emulator
    live.reset()
    live.set_webhook_target(f"{e2e_server[0]}/webhooks/govuk-pay", sender=httpx_webhook_sender)
    try:
        yield live
    finally:
        live.reset()  # webhooks recorded again, not sent, for whatever uses the emulator next


@pytest.fixture(autouse=True)
def _bind_e2e_database(e2e_server):
    """Integration tests rebind the shared database proxy to their own databases: take it back."""
    from app.db import database

    database.initialize(e2e_server[1])


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium, or make system-deps). "
            "Playwright must not download a browser of its own here.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe_page(browser):
    """A JavaScript-enabled page where pages seen with JavaScript off are checked with axe."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture
def journey(request, browser, axe_page, e2e_server, mode):
    """A fresh browser context (no cookies) with JavaScript on or off, as a Journey."""
    base_url = e2e_server[0]
    context = browser.new_context(java_script_enabled=mode == "js", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    name = request.node.originalname.removeprefix("test_").removesuffix("_journey")
    try:
        yield Journey(page, axe_page, name, mode, base_url)
    finally:
        context.close()
