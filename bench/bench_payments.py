"""The citizen's card-payment journey against the GOV.UK Pay emulator: page times and payments a second.

Runs standalone: `.venv/bin/python bench/bench_payments.py [N]` (N payments per mode, default
200, rounded down to a multiple of 4). It makes a throw-away SQLite database, migrates it and
seeds the demo council, then pays for N council tax bills one after another (one thread), each
as a new citizen with their own cookies: what-for, reference, amount, e-mail, check, "Continue
to payment" (which creates the payment at GOV.UK Pay), the emulator's hosted card pages, and
the return page (which reads the outcome, posts to the ledger and stores the receipt). Then it
checks every payment was posted.

Two modes, taking turns (4 rounds each, after 20 payments each to warm up) so that drift in
the machine's speed affects both alike:
  in-process  the app's GOV.UK Pay client reaches the emulator through httpx.WSGITransport and
              the card pages are walked with the emulator's Flask test client (no network)
  HTTP        the emulator on a real socket (werkzeug, in a thread): the client's connection
              pool, HTTP parsing and loopback included, card pages walked with httpx

Reported: server time per page (p50, p95, mean), measured around the Flask test client's call,
so it includes the WSGI environ and cookie handling but no network; "check POST" and "return"
include the app's calls to GOV.UK Pay. Then payments completed a second end to end (everything
above, hosted pages included). The emulator's rate limiter is off (GOV.UK Pay allows 15
creates a second per key) and it keeps its payments in memory.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# As tests/conftest.py does, before anything reads the configuration: pin what create_app("testing")
# reads from the environment, so a developer's .env plays no part.
os.environ["IMS_ENV"] = "testing"
for _name, _value in {
    "SESSION_IDLE_MINUTES": "30",
    "SESSION_MAX_HOURS": "12",
    "LOCKOUT_THRESHOLD": "5",
    "LOCKOUT_MINUTES": "15",
    "MAX_UPLOAD_BYTES": str(50 * 1024 * 1024),
    "NOTIFY_API_KEY": "",
    "NOTIFY_EMAIL_TEMPLATE_ID": "",
    "REDIS_URL": "",
    "HUEY_IMMEDIATE": "true",
    "PROXY_COUNT": "0",
    "WTF_CSRF_SSL_STRICT": "true",
}.items():
    os.environ[_name] = _value

import httpx  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

ROUNDS = 4
N = int(sys.argv[1]) // ROUNDS * ROUNDS if len(sys.argv) > 1 else 200
WARM_UP = 20
PAY_HOST = "http://govuk-pay.test"
SUCCESS_CARD = "4444333322221111"
PAGES = [
    ("payment-for GET", "what is it for? (a new citizen, a new basket)"),
    ("payment-for POST", "council tax chosen"),
    ("reference POST", "account number checked by the fund's rule"),
    ("amount POST", "amount checked against the fund's limits"),
    ("email POST", "e-mail for the receipt"),
    ("check GET", "check your answers"),
    ("check POST", "basket re-checked, payment created at GOV.UK Pay, 303 to the card page"),
    ("return GET", "back from GOV.UK Pay: GET payment, post to the ledger, receipt"),
]
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_BASKET_KEY = re.compile(r'name="basket_key"[^>]*value="([^"]+)"')


# --- the app and the emulator -------------------------------------------------------------------


def make_app(database_url: str):
    """create_app("testing") on a fresh database, migrated and seeded with the demo council."""
    from app import create_app
    from app.cli import migrate_database
    from app.db import database
    from app.demo import seed_configuration, seed_ledger

    os.environ["DATABASE_URL"] = database_url
    app = create_app("testing")
    migrate_database()
    with database.obj.atomic():
        seed_configuration()
    seed_ledger(entries=40)
    return app


def make_emulator(public_url: str):
    from app.config import TEST_PAY_ACCOUNTS
    from app.integrations.govuk_pay.emulator import Account, EmulatorSettings, SystemClock, create_app, get_emulator

    accounts = {key: Account(name=name, webhook_secret=secret) for name, key, secret in TEST_PAY_ACCOUNTS}
    settings = EmulatorSettings(
        accounts=accounts,
        public_url=public_url,
        database_path=":memory:",
        clock=SystemClock(),
        secret_key="govuk-pay-emulator-bench-secret-key-0123456789",
        rate_limit_per_second=0,
        webhook_sender=lambda url, body, headers: 200,
        background_webhooks=False,
    )
    emulator_app = create_app(settings)
    get_emulator(emulator_app).base_url = public_url
    return emulator_app


def gateway(app, base_url: str, transport: httpx.BaseTransport | None):
    from app.integrations.govuk_pay.accounts import PayGateway

    return PayGateway(app.config["GOVUK_PAY_ACCOUNTS"], base_url, transport=transport)


class LiveEmulator:
    """The emulator on http://127.0.0.1:<port>, served by werkzeug from a thread."""

    def __init__(self) -> None:
        self.server = make_server("127.0.0.1", 0, None, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.server.app = make_emulator(self.url)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveEmulator:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


# --- one citizen paying -------------------------------------------------------------------------


def _found(pattern: re.Pattern, html: str) -> str:
    match = pattern.search(html)
    if match is None:
        raise RuntimeError(f"not on the page: {pattern.pattern}")
    return match.group(1)


def walk_card_pages(browser, next_url: str) -> str:
    """Pay on the hosted pages like a payer; returns where GOV.UK Pay sends them back (our return URL)."""
    response = browser.get(next_url)
    card_url = urljoin(next_url, response.headers["Location"])
    page = browser.get(card_url)
    form = {
        "csrf_token": _found(_CSRF, page.text),
        "card_number": SUCCESS_CARD,
        "expiry_month": "12",
        "expiry_year": "2099",
        "cardholder_name": "Pat Payer",
        "cvc": "123",
        "address_line1": "1 High Street",
        "address_line2": "",
        "address_city": "Demoton",
        "address_postcode": "DE1 1AA",
        "email": "",
    }
    response = browser.post(card_url, data=form)
    confirm_url = urljoin(card_url, response.headers["Location"])
    page = browser.get(confirm_url)
    response = browser.post(confirm_url, data={"csrf_token": _found(_CSRF, page.text)})
    if response.status_code != 302:
        raise RuntimeError(f"the card pages ended with {response.status_code}, not a redirect back")
    return response.headers["Location"]


def pay_one(app, reference: str, browser_for, times: dict[str, list[float]]) -> None:
    client = FlaskClient(app, use_cookies=True)

    def timed(name: str, method: str, path: str, expect: int, **kwargs):
        started = time.perf_counter()
        response = client.open(path, method=method, **kwargs)
        times[name].append(time.perf_counter() - started)
        if response.status_code != expect:
            raise RuntimeError(f"{name}: {response.status_code}, expected {expect}")
        return response

    page = timed("payment-for GET", "GET", "/pay/items/0/payment-for", 200)
    token = _found(_CSRF, page.get_data(as_text=True))
    timed("payment-for POST", "POST", "/pay/items/0/payment-for", 302, data={"fund": "CTAX", "csrf_token": token})
    timed("reference POST", "POST", "/pay/items/0/reference", 302, data={"reference": reference, "csrf_token": token})
    timed("amount POST", "POST", "/pay/items/0/amount", 302, data={"amount": "£123.45", "csrf_token": token})
    timed("email POST", "POST", "/pay/email", 302, data={"email": "payer@example.com", "csrf_token": token})
    check = timed("check GET", "GET", "/pay/check", 200).get_data(as_text=True)
    form = {"csrf_token": token, "basket_key": _found(_BASKET_KEY, check)}
    to_card_page = timed("check POST", "POST", "/pay/check", 303, data=form)

    started = time.perf_counter()
    back = walk_card_pages(browser_for(), to_card_page.headers["Location"])
    times["hosted card pages"].append(time.perf_counter() - started)
    page = timed("return GET", "GET", urlsplit(back).path, 200)
    if b"Payment complete" not in page.get_data():
        raise RuntimeError("the return page does not say the payment is complete")


@dataclass
class Mode:
    """One way of reaching the emulator: the app's gateway and the payer's browser on the card pages."""

    name: str
    gateway: object
    browser_for: Callable[[], object]
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wall: float = 0.0
    cpu: float = 0.0
    paid: int = 0


def run(app, mode: Mode, references: list[str], *, measure: bool = True) -> None:
    """Pay for each reference through `mode`, adding to its page times and its wall and CPU seconds."""
    app.extensions["govuk_pay"] = mode.gateway
    times = mode.times if measure else defaultdict(list)
    started, cpu_started = time.perf_counter(), time.process_time()
    for reference in references:
        pay_one(app, reference, mode.browser_for, times)
    if measure:
        mode.wall += time.perf_counter() - started
        mode.cpu += time.process_time() - cpu_started
        mode.paid += len(references)


# --- reporting ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def print_page_table(results: dict[str, dict[str, list[float]]]) -> None:
    modes = list(results)
    header = f"{'page':<22}" + "".join(f" | {mode + ' ms':^28}" for mode in modes)
    print(header)
    print(f"{'':<22}" + "".join(f" | {'p50':>8} {'p95':>8} {'mean':>8} " for _ in modes))
    print("-" * len(header))
    for name in [page for page, _ in PAGES] + ["hosted card pages"]:
        row = f"{name:<22}"
        for mode in modes:
            values = results[mode][name]
            row += f" | {ms(percentile(values, 50))} {ms(percentile(values, 95))} {ms(statistics.fmean(values))} "
        print(row)
    print("-" * len(header))
    for mode in modes:
        ours = sum(statistics.fmean(results[mode][name]) for name, _ in PAGES)
        print(f"{mode}: our {len(PAGES)} pages take {ours * 1000:.1f} ms a payment on average (server time)")


def main() -> int:
    logging.disable(logging.WARNING)  # the client logs every call at INFO; a bench wants none of it
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(f"sqlite:///{Path(tmp) / 'bench.db'}")
        with app.app_context():
            import random

            from app.domain.ledger import LedgerEntry
            from app.domain.payments import Payment
            from app.domain.references.demo import generate_valid_reference

            rng = random.Random(2026)
            count = 2 * (N + WARM_UP)
            references = list(dict.fromkeys(generate_valid_reference("CTAX", rng) for _ in range(count * 2)))[:count]
            posted_before = LedgerEntry.select().where(LedgerEntry.source == "payment").count()

        print(f"Citizen card payments (one council tax bill each), {N} per mode after {WARM_UP} to warm up,")
        print("one thread, fresh SQLite database in a temp folder, GOV.UK Pay emulator with the rate limit off")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine slows the wall-clock figures)")
        print(
            f"The modes take turns, {ROUNDS} rounds of {N // ROUNDS}, so drift in the machine's speed hits both alike"
        )

        emulator_app = make_emulator(PAY_HOST)
        app.extensions["govuk_pay"].close()
        with LiveEmulator() as live, httpx.Client(timeout=10) as browser:
            modes = [
                # (a) and (b): the emulator in-process, through httpx.WSGITransport and its test client.
                Mode(
                    "in-process",
                    gateway(app, PAY_HOST, httpx.WSGITransport(app=emulator_app)),
                    emulator_app.test_client,
                ),
                # (c): the emulator on a real socket.
                Mode("HTTP", gateway(app, live.url, None), lambda: _fresh(browser)),
            ]
            refs = iter(references)
            for mode in modes:  # templates compiled, connections pooled, caches filled
                run(app, mode, [next(refs) for _ in range(WARM_UP)], measure=False)
            for round_ in range(ROUNDS):
                for mode in modes if round_ % 2 == 0 else modes[::-1]:
                    run(app, mode, [next(refs) for _ in range(N // ROUNDS)])
            for mode in modes:
                mode.gateway.close()
                print(f"  {mode.name}: {mode.paid} payments in {mode.wall:.2f} s ({mode.cpu:.2f} s of CPU)")

        with app.app_context():
            paid = Payment.select().where(Payment.status == "succeeded").count()
            posted = LedgerEntry.select().where(LedgerEntry.source == "payment").count() - posted_before
        expected = 2 * (N + WARM_UP)
        if paid != expected or posted != expected:
            print(f"FAILED: {paid} payments succeeded and {posted} ledger entries posted; expected {expected} of each")
            return 1

        print()
        print_page_table({mode.name: mode.times for mode in modes})
        print()
        print("End to end, one thread (basket → create → card pages → return → ledger posted):")
        print(f"  {'emulator':<12} {'payments a second':>18} {'per CPU second':>16} {'ms a payment':>14}")
        for mode in modes:
            rate = mode.paid / mode.wall
            print(f"  {mode.name:<12} {rate:>18.1f} {mode.paid / mode.cpu:>16.1f} {1000 / rate:>14.1f}")
        print("  (CPU: this process, app and emulator together; both ends of the loopback in HTTP mode)")
        print(f"All {expected} payments succeeded, each posted to the ledger once.")
    return 0


def _fresh(browser: httpx.Client) -> httpx.Client:
    """A new payer on the hosted pages: the same connection pool, no cookies from the last one."""
    browser.cookies.clear()
    return browser


if __name__ == "__main__":
    sys.exit(main())
