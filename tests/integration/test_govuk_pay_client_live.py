"""The real GovukPayClient against the GOV.UK Pay emulator on a real socket (no app, no database).

Where tests/unit/test_govuk_pay_client.py checks the client against canned responses, this
checks that it and the emulator agree over HTTP: every call the app makes, then the faults
that only show through real sockets (timeouts, dropped connections) and the retry rules the
client promises (5xx and 429 retried, a create retried with the same Idempotency-Key so it
never makes two payments, 4xx never retried). `sleep` records the waits instead of taking
them, except where the emulator's rate limiter needs a real second to pass.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.integrations.govuk_pay.client import (
    GovukPayClient,
    PayAuthError,
    PayBadRequest,
    PayConflict,
    PayNotFound,
    PayRateLimited,
    PayRefundMismatch,
    PayUnavailable,
)
from tests.govuk_pay_emulator import PARKING_API_KEY, TEST_API_KEY

RETURN_URL = "https://ims.example.gov.uk/pay/return/token-live-1"


class Sleeps(list):
    """A `sleep` for the client that records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def live(fresh_live_govuk_pay_emulator):
    return fresh_live_govuk_pay_emulator


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(live, sleeps):
    """make_client(key=default's, **options) → a GovukPayClient on the live emulator, closed after the test."""
    made: list[GovukPayClient] = []

    def make(key: str = TEST_API_KEY, **options) -> GovukPayClient:
        options.setdefault("sleep", sleeps)
        options.setdefault("timeout", httpx.Timeout(5.0))
        client = GovukPayClient(key, live.base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def pay_client(make_client) -> GovukPayClient:
    return make_client()


def create(client: GovukPayClient, reference: str = "LIVE-0001", amount: int = 1250, **options):
    options.setdefault("idempotency_key", f"key-{reference}")
    return client.create_payment(
        amount_pence=amount,
        reference=reference,
        description="Council tax",
        return_url=RETURN_URL,
        **options,
    )


def emulator_total(live) -> int:
    with live.http_client() as http:
        return http.get("/v1/payments").json()["total"]


def pay_on_hosted_pages(live, payment) -> None:
    final = live.pay(payment.next_url)
    assert final.status_code == 302 and final.headers["Location"] == RETURN_URL


# --- every call -------------------------------------------------------------------------------


def test_create_get_events_and_cancel(live, pay_client, sleeps):
    payment = create(
        pay_client,
        email="payer@example.com",
        metadata={"ims_reference": "LIVE-0001", "items": 2},
        cardholder_name="Pat Payer",
        billing_address={"line1": "1 High Street", "postcode": "DE1 1AA", "country": "GB"},
    )
    assert payment.created is True
    assert payment.location == f"{live.base_url}/v1/payments/{payment.payment_id}"
    assert payment.next_url.startswith(f"{live.base_url}/secure/")
    assert (payment.amount, payment.reference, payment.state.status, payment.state.finished) == (
        1250,
        "LIVE-0001",
        "created",
        False,
    )
    assert payment.metadata == {"ims_reference": "LIVE-0001", "items": 2}
    assert payment.created_date.tzinfo is not None
    assert abs(payment.created_date - datetime.now(UTC)) < timedelta(minutes=1)
    assert "cancel" in payment.links

    got = pay_client.get_payment(payment.payment_id)
    assert (got.payment_id, got.created, got.email) == (payment.payment_id, False, "payer@example.com")
    assert got.next_url and got.next_url != payment.next_url  # each GET gives a fresh single-use link
    assert [e.state.status for e in pay_client.get_events(payment.payment_id)] == ["created"]

    pay_client.cancel_payment(payment.payment_id)
    cancelled = pay_client.get_payment(payment.payment_id)
    assert (cancelled.state.status, cancelled.state.code, cancelled.state.finished) == ("cancelled", "P0040", True)
    assert cancelled.next_url is None and "cancel" not in cancelled.links
    events = pay_client.get_events(payment.payment_id)
    assert [e.state.status for e in events] == ["created", "cancelled"]
    assert events[0].updated <= events[1].updated

    with pytest.raises(PayBadRequest) as refused:
        pay_client.cancel_payment(payment.payment_id)
    assert (refused.value.status, refused.value.code, refused.value.attempts) == (400, "P0501", 1)
    assert sleeps == []  # nothing was retried


def test_card_payment_and_delayed_capture(live, pay_client):
    payment = create(pay_client, delayed_capture=True)
    assert payment.delayed_capture is True
    with pytest.raises(PayConflict) as early:
        pay_client.capture_payment(payment.payment_id)  # not capturable until the payer confirms
    assert (early.value.status, early.value.code) == (409, "P1003")

    pay_on_hosted_pages(live, payment)
    held = pay_client.get_payment(payment.payment_id)
    assert (held.state.status, held.state.finished) == ("capturable", False)
    assert "capture" in held.links
    assert held.card_details is not None and held.card_details.last_digits_card_number == "1111"

    pay_client.capture_payment(payment.payment_id)
    captured = pay_client.get_payment(payment.payment_id)
    assert (captured.state.status, captured.state.finished) == ("success", True)
    assert captured.settlement_summary is not None and captured.settlement_summary.captured_date is not None
    assert [e.state.status for e in pay_client.get_events(payment.payment_id)][-2:] == ["capturable", "success"]


def test_refunds_and_the_412_mismatch(live, pay_client, sleeps):
    payment = create(pay_client, amount=5000)
    with pytest.raises(PayBadRequest) as not_yet:
        pay_client.create_refund(payment.payment_id, amount_pence=100, refund_amount_available=5000)
    assert (not_yet.value.status, not_yet.value.code) == (400, "P0603")

    pay_on_hosted_pages(live, payment)
    paid = pay_client.get_payment(payment.payment_id)
    assert paid.state.status == "success" and paid.card_details.card_brand
    assert (paid.refund_summary.status, paid.refund_summary.amount_available) == ("available", 5000)

    refund = pay_client.create_refund(payment.payment_id, amount_pence=1500, refund_amount_available=5000)
    assert (refund.amount, refund.status, refund.payment_id) == (1500, "success", payment.payment_id)
    assert pay_client.get_refund(payment.payment_id, refund.refund_id).status == "success"
    assert [r.refund_id for r in pay_client.list_refunds(payment.payment_id)] == [refund.refund_id]
    after = pay_client.get_payment(payment.payment_id).refund_summary
    assert (after.status, after.amount_available, after.amount_submitted) == ("available", 3500, 1500)

    # The same refund again (a retry after a lost answer): refused, never refunded twice.
    with pytest.raises(PayRefundMismatch) as mismatch:
        pay_client.create_refund(payment.payment_id, amount_pence=1500, refund_amount_available=5000)
    assert (mismatch.value.status, mismatch.value.code, mismatch.value.retryable) == (412, "P0604", False)
    assert mismatch.value.description == "Refund amount available mismatch."
    with pytest.raises(PayBadRequest) as too_much:
        pay_client.create_refund(payment.payment_id, amount_pence=3501, refund_amount_available=3500)
    assert too_much.value.description.endswith("amount_not_available")
    with pytest.raises(PayNotFound) as unknown:
        pay_client.get_refund(payment.payment_id, "norefundwiththisid")
    assert unknown.value.code == "P0700"

    pay_client.create_refund(payment.payment_id, amount_pence=3500, refund_amount_available=3500)
    assert pay_client.get_payment(payment.payment_id).refund_summary.status == "full"
    assert sleeps == []


def test_search(live, pay_client):
    first = create(pay_client, "LIVE-SEARCH-1", email="one@example.com")
    create(pay_client, "LIVE-SEARCH-2")
    create(pay_client, "LIVE-SEARCH-3")
    pay_client.cancel_payment(first.payment_id)

    by_reference = pay_client.search_payments(reference="live-search-1")  # exact, case-insensitive
    assert (by_reference.total, [p.payment_id for p in by_reference.results]) == (1, [first.payment_id])
    assert by_reference.results[0].state.status == "cancelled"
    assert pay_client.search_payments(state="created").total == 2
    assert pay_client.search_payments(email="one@example.com").total == 1

    page = pay_client.search_payments(display_size=2, page=2)
    assert (page.total, page.count, page.page, len(page.results)) == (3, 1, 2, 1)
    assert "prev_page" in page.links
    now, five_minutes = datetime.now(UTC), timedelta(minutes=5)
    assert pay_client.search_payments(from_date=now - five_minutes, to_date=now + five_minutes).total == 3
    assert pay_client.search_payments(from_date=now + five_minutes).total == 0
    with pytest.raises(PayNotFound) as beyond:
        pay_client.search_payments(display_size=2, page=3)
    assert beyond.value.code == "P0402"
    with pytest.raises(PayBadRequest) as invalid:
        pay_client.search_payments(state="nonsense")
    assert (invalid.value.status, invalid.value.code) == (422, "P0401")


# --- faults through real sockets ----------------------------------------------------------------


def test_a_500_is_retried_and_the_create_makes_one_payment(live, pay_client, sleeps):
    live.inject_fault("error", count=1, method="POST", path="/v1/payments")
    payment = create(pay_client)
    assert payment.created is True
    assert len(sleeps) == 1
    assert emulator_total(live) == 1

    live.inject_fault("error", count=2, status=502, method="GET")
    assert pay_client.get_payment(payment.payment_id).payment_id == payment.payment_id
    assert len(sleeps) == 3
    assert sleeps[1] < sleeps[2]  # exponential backoff


def test_gov_uk_pay_down_is_pay_unavailable_after_every_attempt(live, make_client, sleeps):
    client = make_client(max_attempts=3)
    live.inject_fault("unavailable", count=3)
    with pytest.raises(PayUnavailable) as down:
        create(client)
    assert (down.value.status, down.value.code, down.value.attempts, down.value.retryable) == (503, "P0999", 3, True)
    assert len(sleeps) == 2
    assert emulator_total(live) == 0
    assert create(client).created is True  # and up again


def test_a_dropped_answer_is_retried_and_replayed_not_made_twice(live, pay_client, sleeps):
    # GOV.UK Pay makes the payment, then the connection drops before the answer arrives.
    live.inject_fault("drop", count=1, process=True, method="POST", path="/v1/payments")
    payment = create(pay_client)
    assert payment.created is False  # the retry got the 200 replay of the first attempt
    assert len(sleeps) == 1
    assert emulator_total(live) == 1
    assert pay_client.get_payment(payment.payment_id).reference == "LIVE-0001"

    # A drop before any work: the retry makes the payment.
    live.inject_fault("drop", count=1, method="POST", path="/v1/payments")
    assert create(pay_client, "LIVE-0002").created is True
    assert emulator_total(live) == 2


def test_a_timeout_is_retried_then_pay_unavailable(live, make_client, sleeps):
    client = make_client(timeout=httpx.Timeout(0.2), max_attempts=2)
    payment = create(client)
    live.inject_fault("timeout", count=2, seconds=0.6, method="GET")
    started = time.monotonic()
    with pytest.raises(PayUnavailable) as timed_out:
        client.get_payment(payment.payment_id)
    assert time.monotonic() - started < 1.0  # the client gave up; it did not wait for the late answers
    assert timed_out.value.status is None and "timed out" in timed_out.value.description
    assert (timed_out.value.attempts, len(sleeps)) == (2, 1)

    # A create that times out was still made (the answer came late): asking again replays it.
    live.inject_fault("timeout", count=2, seconds=0.6, method="POST", path="/v1/payments")
    with pytest.raises(PayUnavailable):
        create(client, "LIVE-0002")
    time.sleep(0.6)  # let the late answers finish on the server
    replay = create(client, "LIVE-0002")
    assert replay.created is False
    assert emulator_total(live) == 2


def test_429_is_retried_after_at_least_a_second(live, make_client):
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the limiter counts real time: this one really waits
        waits.append(seconds)
        time.sleep(seconds)

    client = make_client(sleep=sleep)
    live.set_rate_limit(1)
    assert create(client, "LIVE-0001").created is True
    assert create(client, "LIVE-0002").created is True  # refused once (429), then let through
    assert len(waits) == 1 and 1.0 <= waits[0] < 2.0
    assert emulator_total(live) == 2


def test_persistent_429_is_pay_rate_limited(live, pay_client, sleeps):
    live.set_rate_limit(1)
    create(pay_client, "LIVE-0001")
    with pytest.raises(PayRateLimited) as limited:
        create(pay_client, "LIVE-0002")
    assert (limited.value.status, limited.value.code, limited.value.attempts) == (429, "P0900", 4)
    assert len(sleeps) == 3 and all(wait >= 1.0 for wait in sleeps)
    # GETs are not limited at this level.
    assert pay_client.search_payments().total == 1


def test_a_wrong_key_is_401_and_never_retried(live, make_client, sleeps):
    client = make_client("api_test_thisisnotakeyanyoneknows")
    with pytest.raises(PayAuthError) as refused:
        create(client)
    assert (refused.value.status, refused.value.code, refused.value.attempts) == (401, None, 1)
    with pytest.raises(PayAuthError):
        client.get_payment("anything")
    assert sleeps == []
    assert emulator_total(live) == 0


def test_each_key_sees_only_its_own_account(live, make_client, sleeps):
    default, parking = make_client(TEST_API_KEY), make_client(PARKING_API_KEY)
    payment = create(default)
    for call, code in [
        (lambda: parking.get_payment(payment.payment_id), "P0200"),
        (lambda: parking.get_events(payment.payment_id), "P0300"),
        (lambda: parking.cancel_payment(payment.payment_id), "P0500"),
        (lambda: parking.create_refund(payment.payment_id, amount_pence=1, refund_amount_available=1250), "P0600"),
        (lambda: parking.capture_payment(payment.payment_id), "P1000"),
    ]:
        with pytest.raises(PayNotFound) as hidden:
            call()
        assert (hidden.value.status, hidden.value.code) == (404, code)
    assert parking.search_payments().total == 0
    # The same Idempotency-Key on another account is another payment.
    assert create(parking).payment_id != payment.payment_id
    assert default.get_payment(payment.payment_id).state.status == "created"
    assert sleeps == []
