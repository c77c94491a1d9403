"""GOV.UK Pay client: requests on the wire, parsing, typed errors, retries, money and webhook signatures.

Everything runs against httpx.MockTransport: no network, no database, no Flask. `sleep` is
injected so retry tests record the waits instead of taking them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.integrations.govuk_pay import client as client_module
from app.integrations.govuk_pay.client import (
    DEFAULT_BASE_URL,
    GovukPayClient,
    PayAuthError,
    PayBadRequest,
    PayConflict,
    PayError,
    PayForbidden,
    PayNotFound,
    PayRateLimited,
    PayRefundMismatch,
    PayUnavailable,
    pence_from_pounds,
    sign_webhook,
    verify_webhook_signature,
)

API_KEY = "api_test_abc123secretkey"
BASE = "https://pay.example.test"
PAYMENT_ID = "hu20sqlact5260q2nanm0q8u93"
NEXT_URL = "https://www.payments.service.gov.uk/secure/ef1b6ff1-db34-4c62-b854-3ed4ba3c4049"


def payment_json(**overrides) -> dict:
    """A create/GET response shaped like GOV.UK Pay's, plus a field GOV.UK Pay might add one day."""
    body = {
        "amount": 1200,
        "description": "Pay your council tax",
        "reference": "CT-12345",
        "language": "en",
        "email": "sam@example.com",
        "metadata": {"fund": "CTAX", "ledger_code": "4010", "vat": 0, "urgent": True},
        "state": {"status": "created", "finished": False},
        "payment_id": PAYMENT_ID,
        "payment_provider": "sandbox",
        "created_date": "2026-03-02T10:36:26.988Z",
        "refund_summary": {"status": "pending", "amount_available": 1200, "amount_submitted": 0},
        "settlement_summary": {},
        "delayed_capture": False,
        "moto": False,
        "return_url": "https://ims.example.gov.uk/pay/return/4f1c",
        "authorisation_mode": "web",
        "some_future_field": {"nested": [1, 2.5, "x"]},
        "_links": {
            "self": {"href": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}", "method": "GET"},
            "next_url": {"href": NEXT_URL, "method": "GET"},
            "next_url_post": {
                "type": "application/x-www-form-urlencoded",
                "params": {"chargeTokenId": "ef1b6ff1"},
                "href": "https://www.payments.service.gov.uk/secure",
                "method": "POST",
            },
            "events": {"href": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}/events", "method": "GET"},
            "refunds": {"href": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}/refunds", "method": "GET"},
            "cancel": {"href": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}/cancel", "method": "POST"},
        },
    }
    body.update(overrides)
    return body


def successful_payment_json() -> dict:
    return payment_json(
        state={"status": "success", "finished": True},
        card_details={
            "last_digits_card_number": "1111",
            "first_digits_card_number": "444433",
            "cardholder_name": "Sam Smith",
            "expiry_date": "04/29",
            "billing_address": {"line1": "1 High St", "city": "Leeds", "postcode": "LS1 1AA", "country": "GB"},
            "card_brand": "Visa",
            "card_type": "debit",
            "wallet_type": None,
        },
        refund_summary={"status": "available", "amount_available": 1200, "amount_submitted": 0},
        settlement_summary={
            "capture_submit_time": "2026-03-02T10:40:01.123Z",
            "captured_date": "2026-03-02",
            "settled_date": "2026-03-04",
        },
        fee=25,
        net_amount=1175,
        provider_id="pi_3abc",
        payment_provider="stripe",
        _links={"self": {"href": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}", "method": "GET"}},
    )


class Recorder:
    """A MockTransport handler that answers from a script and remembers every request."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


def make_client(*responses, max_attempts=4, **kwargs) -> tuple[GovukPayClient, Recorder, list[float]]:
    recorder = Recorder(*responses)
    sleeps: list[float] = []
    client = GovukPayClient(
        API_KEY,
        BASE,
        transport=httpx.MockTransport(recorder),
        max_attempts=max_attempts,
        sleep=sleeps.append,
        **kwargs,
    )
    return client, recorder, sleeps


def json_response(status: int, body, headers=None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def error_response(status: int, code: str, description: str, **extra) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "description": description, **extra})


def create(client: GovukPayClient, **overrides):
    arguments = {
        "amount_pence": 1200,
        "reference": "CT-12345",
        "description": "Pay your council tax",
        "return_url": "https://ims.example.gov.uk/pay/return/4f1c",
        "idempotency_key": "attempt-0d5b3c9e-1",
    }
    arguments.update(overrides)
    return client.create_payment(**arguments)


# --- create -------------------------------------------------------------------------------------


def test_create_sends_json_headers_and_idempotency_key():
    client, recorder, _ = make_client(
        json_response(201, payment_json(), {"Location": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}"})
    )
    create(
        client,
        email="sam@example.com",
        metadata={"fund": "CTAX", "ledger_code": "4010", "count": 2, "urgent": True},
        language="cy",
        cardholder_name="Sam Smith",
        billing_address={"line1": "1 High St", "postcode": "LS1 1AA", "country": "GB"},
        delayed_capture=True,
    )
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/payments"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Idempotency-Key"] == "attempt-0d5b3c9e-1"
    assert request.headers["User-Agent"] == "council-ims"
    assert json.loads(request.content) == {
        "amount": 1200,
        "reference": "CT-12345",
        "description": "Pay your council tax",
        "return_url": "https://ims.example.gov.uk/pay/return/4f1c",
        "language": "cy",
        "email": "sam@example.com",
        "metadata": {"fund": "CTAX", "ledger_code": "4010", "count": 2, "urgent": True},
        "prefilled_cardholder_details": {
            "cardholder_name": "Sam Smith",
            "billing_address": {"line1": "1 High St", "postcode": "LS1 1AA", "country": "GB"},
        },
        "delayed_capture": True,
    }


def test_create_leaves_out_optional_fields_that_were_not_given():
    client, recorder, _ = make_client(json_response(201, payment_json()))
    create(client, metadata={})
    assert json.loads(recorder.requests[0].content) == {
        "amount": 1200,
        "reference": "CT-12345",
        "description": "Pay your council tax",
        "return_url": "https://ims.example.gov.uk/pay/return/4f1c",
        "language": "en",
    }


def test_create_sends_non_ascii_as_utf8_not_backslash_escapes():
    # The firewall can block backslashes: "\u00e9" escapes would put them in the body.
    client, recorder, _ = make_client(json_response(201, payment_json()))
    create(client, description="Treth y cyngor – Café", cardholder_name="Siân Jones")
    content = recorder.requests[0].content
    assert b"\\" not in content
    assert "Siân".encode() in content


def test_create_parses_201_with_location_and_next_url():
    location = f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}"
    client, _, _ = make_client(json_response(201, payment_json(), {"Location": location}))
    payment = create(client)
    assert payment.created is True
    assert payment.location == location
    assert payment.next_url == NEXT_URL
    assert payment.payment_id == PAYMENT_ID
    assert payment.amount == 1200
    assert payment.reference == "CT-12345"
    assert payment.description == "Pay your council tax"
    assert payment.state.status == "created"
    assert payment.state.finished is False
    assert payment.state.code is None
    assert payment.return_url == "https://ims.example.gov.uk/pay/return/4f1c"
    assert payment.email == "sam@example.com"
    assert payment.language == "en"
    assert payment.metadata == {"fund": "CTAX", "ledger_code": "4010", "vat": 0, "urgent": True}
    assert payment.created_date == datetime(2026, 3, 2, 10, 36, 26, 988000, tzinfo=UTC)
    assert payment.created_date.utcoffset() == timedelta(0)
    assert payment.refund_summary.status == "pending"
    assert payment.refund_summary.amount_available == 1200
    assert payment.settlement_summary.captured_date is None
    assert payment.card_details is None
    assert payment.fee is None and payment.net_amount is None and payment.provider_id is None
    assert payment.payment_provider == "sandbox"
    assert payment.delayed_capture is False and payment.moto is False
    assert payment.links["cancel"]["method"] == "POST"
    assert payment.raw["authorisation_mode"] == "web"


def test_unknown_response_fields_are_ignored_and_kept_in_raw_without_floats():
    client, _, _ = make_client(json_response(201, payment_json()))
    payment = create(client)
    assert payment.raw["some_future_field"] == {"nested": [1, Decimal("2.5"), "x"]}


def test_create_200_is_an_idempotent_replay():
    client, _, _ = make_client(json_response(200, payment_json(state={"status": "started", "finished": False})))
    payment = create(client)
    assert payment.created is False
    assert payment.state.status == "started"


@pytest.mark.parametrize("amount", [12.0, 12.5, Decimal("12"), "1200", True, None])
def test_create_refuses_amounts_that_are_not_int_pence(amount):
    client, recorder, _ = make_client(json_response(201, payment_json()))
    with pytest.raises(ValueError, match="amount_pence"):
        create(client, amount_pence=amount)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"idempotency_key": ""},
        {"idempotency_key": "has space"},
        {"idempotency_key": "x" * 256},
        {"reference": "CT<12345>"},
        {"reference": "a|b"},
        {"description": 'Say "hello"'},
        {"description": "back\\slash"},
        {"description": "  "},
        {"return_url": ""},
        {"metadata": {"rate": 1.5}},
        {"metadata": {"rate": Decimal("1.5")}},
        {"metadata": {"nested": {"a": 1}}},
    ],
)
def test_create_refuses_what_gov_uk_pay_would_reject_before_sending(overrides):
    client, recorder, _ = make_client(json_response(201, payment_json()))
    with pytest.raises(ValueError):
        create(client, **overrides)
    assert recorder.requests == []


# --- get, events, cancel, capture ---------------------------------------------------------------


def test_get_payment_parses_a_finished_payment():
    client, recorder, _ = make_client(json_response(200, successful_payment_json()))
    payment = client.get_payment(PAYMENT_ID)
    (request,) = recorder.requests
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/v1/payments/{PAYMENT_ID}"
    assert "Content-Type" not in request.headers
    assert payment.created is False
    assert payment.state.status == "success" and payment.state.finished is True
    assert payment.next_url is None
    card = payment.card_details
    assert card.last_digits_card_number == "1111"
    assert card.first_digits_card_number == "444433"
    assert card.cardholder_name == "Sam Smith"
    assert card.expiry_date == "04/29"
    assert card.card_brand == "Visa" and card.card_type == "debit" and card.wallet_type is None
    assert card.billing_address["postcode"] == "LS1 1AA"
    assert payment.refund_summary.status == "available"
    settlement = payment.settlement_summary
    assert settlement.capture_submit_time == datetime(2026, 3, 2, 10, 40, 1, 123000, tzinfo=UTC)
    assert settlement.captured_date == date(2026, 3, 2)
    assert settlement.settled_date == date(2026, 3, 4)
    assert payment.fee == 25 and payment.net_amount == 1175
    assert payment.provider_id == "pi_3abc" and payment.payment_provider == "stripe"


def test_get_payment_with_a_failure_code():
    body = payment_json(state={"status": "failed", "finished": True, "code": "P0030", "message": "x"})
    client, _, _ = make_client(json_response(200, body))
    state = client.get_payment(PAYMENT_ID).state
    assert (state.status, state.finished, state.code, state.message) == ("failed", True, "P0030", "x")


def test_missing_optional_fields_become_none_or_defaults():
    minimal = {
        "payment_id": PAYMENT_ID,
        "amount": 500,
        "reference": "R1",
        "description": "D",
        "state": {"status": "error"},
        "created_date": "2026-03-02T10:36:26Z",
    }
    client, _, _ = make_client(json_response(200, minimal))
    payment = client.get_payment(PAYMENT_ID)
    assert payment.state.finished is True  # derived when `finished` is absent
    assert payment.return_url is None and payment.email is None and payment.next_url is None
    assert payment.language == "en" and payment.metadata == {} and payment.links == {}
    assert payment.card_details is None and payment.refund_summary is None and payment.settlement_summary is None
    assert payment.fee is None and payment.net_amount is None
    assert payment.delayed_capture is False and payment.moto is False


def test_dates_with_offsets_are_converted_to_utc():
    client, _, _ = make_client(json_response(200, payment_json(created_date="2026-06-01T11:00:00+01:00")))
    created = client.get_payment(PAYMENT_ID).created_date
    assert created == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert created.tzinfo == UTC


def test_a_payment_without_its_id_is_a_pay_error_not_a_crash():
    body = payment_json()
    del body["payment_id"]
    client, _, _ = make_client(json_response(200, body))
    with pytest.raises(PayError) as caught:
        client.get_payment(PAYMENT_ID)
    assert type(caught.value) is PayError
    assert caught.value.retryable is False


def test_a_2xx_that_is_not_json_is_a_pay_error():
    client, _, _ = make_client(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(PayError, match="not JSON"):
        client.get_payment(PAYMENT_ID)


def test_float_amount_in_a_response_is_refused():
    client, _, _ = make_client(httpx.Response(200, content=json.dumps(payment_json()).replace("1200", "12.0", 1)))
    with pytest.raises(PayError, match="amount"):
        client.get_payment(PAYMENT_ID)


def test_payment_ids_are_quoted_into_the_path():
    client, recorder, _ = make_client(json_response(200, payment_json()))
    client.get_payment("../refunds?x=1")
    assert recorder.requests[0].url.raw_path == b"/v1/payments/..%2Frefunds%3Fx%3D1"


def test_get_events():
    body = {
        "payment_id": PAYMENT_ID,
        "events": [
            {
                "payment_id": PAYMENT_ID,
                "state": {"status": "created", "finished": False},
                "updated": "2026-03-02T10:36:26.988Z",
                "_links": {"payment_url": {"href": "x", "method": "GET"}},
            },
            {
                "state": {"status": "failed", "finished": True, "code": "P0020", "message": "Payment expired"},
                "updated": "2026-03-02T12:06:27.000Z",
            },
        ],
        "_links": {"self": {"href": "x", "method": "GET"}},
    }
    client, recorder, _ = make_client(json_response(200, body))
    events = client.get_events(PAYMENT_ID)
    assert str(recorder.requests[0].url) == f"{BASE}/v1/payments/{PAYMENT_ID}/events"
    assert [event.state.status for event in events] == ["created", "failed"]
    assert events[1].payment_id == PAYMENT_ID
    assert events[1].state.code == "P0020"
    assert events[1].updated == datetime(2026, 3, 2, 12, 6, 27, tzinfo=UTC)


@pytest.mark.parametrize("action", ["cancel", "capture"])
def test_cancel_and_capture_post_with_no_body_and_return_none(action):
    client, recorder, _ = make_client(httpx.Response(204))
    assert getattr(client, f"{action}_payment")(PAYMENT_ID) is None
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/payments/{PAYMENT_ID}/{action}"
    assert request.content == b""
    assert "Content-Type" not in request.headers
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (error_response(400, "P0501", "Cancellation of payment failed"), PayBadRequest),
        (error_response(409, "P0502", "Cancellation of payment failed"), PayConflict),
        (error_response(404, "P0500", "Not found"), PayNotFound),
    ],
)
def test_cancel_errors(response, error):
    client, recorder, _ = make_client(response)
    with pytest.raises(error) as caught:
        client.cancel_payment(PAYMENT_ID)
    assert caught.value.code == response.json()["code"]
    assert len(recorder.requests) == 1


def test_capture_conflict():
    client, _, _ = make_client(error_response(409, "P1003", "Payment cannot be captured"))
    with pytest.raises(PayConflict) as caught:
        client.capture_payment(PAYMENT_ID)
    assert caught.value.code == "P1003"


# --- refunds ------------------------------------------------------------------------------------


def refund_json(**overrides) -> dict:
    body = {
        "refund_id": "j6se0f2o427g28g8yg3u3i",
        "created_date": "2026-03-03T09:00:00.000Z",
        "amount": 500,
        "status": "submitted",
        "settlement_summary": {},
        "_links": {
            "self": {"href": "x", "method": "GET"},
            "payment": {"href": f"{DEFAULT_BASE_URL}/v1/payments/{PAYMENT_ID}", "method": "GET"},
        },
    }
    body.update(overrides)
    return body


def test_create_refund_sends_amount_and_amount_available_and_parses_202():
    client, recorder, _ = make_client(json_response(202, refund_json()))
    refund = client.create_refund(PAYMENT_ID, amount_pence=500, refund_amount_available=1200)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/payments/{PAYMENT_ID}/refunds"
    assert request.headers["Content-Type"] == "application/json"
    assert "Idempotency-Key" not in request.headers
    assert json.loads(request.content) == {"amount": 500, "refund_amount_available": 1200}
    assert refund.refund_id == "j6se0f2o427g28g8yg3u3i"
    assert refund.payment_id == PAYMENT_ID
    assert refund.amount == 500
    assert refund.status == "submitted"
    assert refund.created_date == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert refund.raw["_links"]["payment"]["method"] == "GET"


@pytest.mark.parametrize(
    "arguments",
    [{"amount_pence": 5.0, "refund_amount_available": 1200}, {"amount_pence": 500, "refund_amount_available": "1200"}],
)
def test_create_refund_refuses_non_int_amounts(arguments):
    client, recorder, _ = make_client(json_response(202, refund_json()))
    with pytest.raises(ValueError):
        client.create_refund(PAYMENT_ID, **arguments)
    assert recorder.requests == []


def test_refund_amount_mismatch_is_its_own_error_and_not_retried():
    client, recorder, _ = make_client(error_response(412, "P0604", "Refund amount available mismatch."))
    with pytest.raises(PayRefundMismatch) as caught:
        client.create_refund(PAYMENT_ID, amount_pence=500, refund_amount_available=1200)
    assert caught.value.status == 412 and caught.value.code == "P0604"
    assert len(recorder.requests) == 1


def test_get_refund():
    client, recorder, _ = make_client(json_response(200, refund_json(status="success")))
    refund = client.get_refund(PAYMENT_ID, "j6se0f2o427g28g8yg3u3i")
    assert str(recorder.requests[0].url) == f"{BASE}/v1/payments/{PAYMENT_ID}/refunds/j6se0f2o427g28g8yg3u3i"
    assert refund.status == "success"


def test_list_refunds_reads_embedded_refunds():
    body = {
        "payment_id": PAYMENT_ID,
        "_links": {"self": {"href": "x"}, "payment": {"href": "y"}},
        "_embedded": {
            "refunds": [refund_json(status="success"), refund_json(refund_id="second", amount=200, status="error")]
        },
    }
    client, recorder, _ = make_client(json_response(200, body))
    refunds = client.list_refunds(PAYMENT_ID)
    assert str(recorder.requests[0].url) == f"{BASE}/v1/payments/{PAYMENT_ID}/refunds"
    assert [(r.refund_id, r.amount, r.status, r.payment_id) for r in refunds] == [
        ("j6se0f2o427g28g8yg3u3i", 500, "success", PAYMENT_ID),
        ("second", 200, "error", PAYMENT_ID),
    ]


def test_list_refunds_with_none():
    client, _, _ = make_client(json_response(200, {"payment_id": PAYMENT_ID, "_embedded": {"refunds": []}}))
    assert client.list_refunds(PAYMENT_ID) == []


# --- search -------------------------------------------------------------------------------------


def test_search_formats_filters_and_parses_the_page():
    body = {
        "total": 3,
        "count": 2,
        "page": 1,
        "results": [successful_payment_json(), payment_json(payment_id="second")],
        "_links": {"self": {"href": "a"}, "next_page": {"href": "b"}, "prev_page": None},
    }
    client, recorder, _ = make_client(json_response(200, body))
    page = client.search_payments(
        reference="CT-12345",
        state="success",
        from_date=datetime(2026, 3, 1, 0, 0, 0, 500, tzinfo=UTC),
        to_date=datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=1))),
        from_settled_date=date(2026, 3, 1),
        email=None,
        page=1,
        display_size=2,
    )
    params = dict(recorder.requests[0].url.params)
    assert recorder.requests[0].url.path == "/v1/payments"
    assert params == {
        "reference": "CT-12345",
        "state": "success",
        "from_date": "2026-03-01T00:00:00Z",
        "to_date": "2026-03-02T00:00:00Z",
        "from_settled_date": "2026-03-01",
        "page": "1",
        "display_size": "2",
    }
    assert (page.total, page.count, page.page) == (3, 2, 1)
    assert [p.payment_id for p in page.results] == [PAYMENT_ID, "second"]
    assert all(p.created is False for p in page.results)
    assert page.results[0].card_details.last_digits_card_number == "1111"
    assert page.links["next_page"]["href"] == "b"


def test_search_refuses_unknown_filters_and_naive_datetimes():
    client, recorder, _ = make_client(json_response(200, {"total": 0, "count": 0, "page": 1, "results": []}))
    with pytest.raises(TypeError, match="refrence"):
        client.search_payments(refrence="x")
    with pytest.raises(ValueError, match="timezone"):
        client.search_payments(from_date=datetime(2026, 3, 1))  # noqa: DTZ001
    with pytest.raises(ValueError):
        client.search_payments(from_date=date(2026, 3, 1))
    assert recorder.requests == []


def test_search_page_not_found():
    client, _, _ = make_client(error_response(404, "P0402", "Page not found"))
    with pytest.raises(PayNotFound):
        client.search_payments(page=9)


# --- errors -------------------------------------------------------------------------------------


def test_error_envelope_is_parsed():
    client, _, _ = make_client(
        error_response(
            422, "P0102", "Invalid attribute value: amount. Must be greater than or equal to 30", field="amount"
        )
    )
    with pytest.raises(PayBadRequest) as caught:
        create(client, amount_pence=10)
    error = caught.value
    assert error.status == 422
    assert error.code == "P0102"
    assert error.description == "Invalid attribute value: amount. Must be greater than or equal to 30"
    assert error.field == "amount"
    assert error.header is None
    assert error.retryable is False
    assert "P0102" in str(error) and "amount" in str(error)


def test_error_envelope_with_a_header():
    client, _, _ = make_client(
        error_response(422, "P0102", "Invalid attribute value: Idempotency-Key.", header="Idempotency-Key")
    )
    with pytest.raises(PayBadRequest) as caught:
        create(client)
    assert caught.value.header == "Idempotency-Key"
    assert caught.value.field is None


def test_401_with_a_non_json_body_is_an_auth_error_and_the_body_is_never_parsed():
    client, recorder, _ = make_client(httpx.Response(401, text="<html>Unauthorized</html>"))
    with pytest.raises(PayAuthError) as caught:
        client.get_payment(PAYMENT_ID)
    assert caught.value.status == 401
    assert caught.value.code is None
    assert caught.value.retryable is False
    assert len(recorder.requests) == 1


def test_401_even_with_a_json_body_keeps_code_none():
    client, _, _ = make_client(error_response(401, "P9999", "whatever"))
    with pytest.raises(PayAuthError) as caught:
        client.get_payment(PAYMENT_ID)
    assert caught.value.code is None


def test_non_json_error_body_is_handled():
    client, _, _ = make_client(httpx.Response(400, text="<html>Bad Request</html>"))
    with pytest.raises(PayBadRequest) as caught:
        client.get_payment(PAYMENT_ID)
    assert caught.value.code is None
    assert caught.value.description == "HTTP 400 Bad Request"


def test_firewall_block_is_a_bad_request():
    client, _, _ = make_client(
        error_response(
            400,
            "P0920",
            "Request blocked by security rules. Please consult API documentation for more information.",
        )
    )
    with pytest.raises(PayBadRequest) as caught:
        create(client)
    assert caught.value.code == "P0920"


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "P0101", PayBadRequest),
        (401, None, PayAuthError),
        (403, "P0941", PayForbidden),
        (404, "P0200", PayNotFound),
        (409, "P0191", PayConflict),
        (412, "P0604", PayRefundMismatch),
        (422, "P0102", PayBadRequest),
        (418, "P9999", PayError),
    ],
)
def test_client_errors_are_never_retried(status, code, error):
    response = httpx.Response(status) if code is None else error_response(status, code, "no")
    client, recorder, sleeps = make_client(response)
    with pytest.raises(error) as caught:
        create(client)
    assert type(caught.value) is error
    assert caught.value.status == status
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_all_errors_are_pay_errors():
    for cls in (
        PayAuthError,
        PayNotFound,
        PayBadRequest,
        PayConflict,
        PayRefundMismatch,
        PayForbidden,
        PayRateLimited,
        PayUnavailable,
    ):
        assert issubclass(cls, PayError)


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        error_response(500, "P0198", "Downstream system error"),
        httpx.Response(503, text="Service Unavailable"),
        error_response(429, "P0900", "Too many requests"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=["500", "503", "429", "timeout", "connect", "disconnect"],
)
def test_create_is_retried_with_the_same_idempotency_key(failure):
    client, recorder, sleeps = make_client(failure, failure, json_response(200, payment_json()))
    payment = create(client)
    assert payment.payment_id == PAYMENT_ID
    assert payment.created is False  # the replay of an earlier attempt that did get through
    assert len(recorder.requests) == 3
    assert {request.headers["Idempotency-Key"] for request in recorder.requests} == {"attempt-0d5b3c9e-1"}
    assert len({request.content for request in recorder.requests}) == 1
    assert len(sleeps) == 2


def test_get_is_retried_after_a_5xx():
    client, recorder, _ = make_client(httpx.Response(502), json_response(200, payment_json()))
    assert client.get_payment(PAYMENT_ID).payment_id == PAYMENT_ID
    assert len(recorder.requests) == 2


def test_gives_up_after_max_attempts_with_unavailable():
    client, recorder, sleeps = make_client(error_response(500, "P0298", "Downstream system error"), max_attempts=3)
    with pytest.raises(PayUnavailable) as caught:
        client.get_payment(PAYMENT_ID)
    assert len(recorder.requests) == 3
    assert len(sleeps) == 2
    error = caught.value
    assert (error.status, error.code, error.retryable, error.attempts) == (500, "P0298", True, 3)


def test_gives_up_after_max_attempts_with_rate_limited():
    client, recorder, sleeps = make_client(error_response(429, "P0900", "Too many requests"))
    with pytest.raises(PayRateLimited) as caught:
        create(client)
    assert len(recorder.requests) == 4
    assert caught.value.code == "P0900" and caught.value.retryable is True
    assert all(wait >= client_module.RATE_LIMIT_WAIT_SECONDS for wait in sleeps)


def test_timeouts_give_up_with_unavailable_and_no_status():
    client, recorder, _ = make_client(httpx.ConnectTimeout("connect timed out"), max_attempts=2)
    with pytest.raises(PayUnavailable) as caught:
        client.get_payment(PAYMENT_ID)
    assert len(recorder.requests) == 2
    assert caught.value.status is None and caught.value.code is None and caught.value.retryable is True
    assert isinstance(caught.value.__cause__, httpx.ConnectTimeout)


def test_max_attempts_one_means_no_retry():
    client, recorder, sleeps = make_client(httpx.Response(503), max_attempts=1)
    with pytest.raises(PayUnavailable):
        client.get_payment(PAYMENT_ID)
    assert len(recorder.requests) == 1 and sleeps == []


def test_backoff_grows_exponentially_with_bounded_jitter():
    client, _, sleeps = make_client(httpx.Response(500), max_attempts=5, backoff_seconds=0.5)
    with pytest.raises(PayUnavailable):
        client.get_payment(PAYMENT_ID)
    assert len(sleeps) == 4
    for attempt, wait in enumerate(sleeps, start=1):
        base = 0.5 * 2 ** (attempt - 1)
        assert base <= wait <= base + 0.5


def test_a_client_error_after_a_retry_stops_retrying():
    client, recorder, _ = make_client(httpx.Response(503), error_response(409, "P0191", "Idempotency key reused"))
    with pytest.raises(PayConflict) as caught:
        create(client)
    assert len(recorder.requests) == 2
    assert caught.value.attempts == 2


def test_default_timeouts_are_explicit():
    client = GovukPayClient(API_KEY)
    assert client._http.timeout.connect == 5.0
    assert client._http.timeout.read == 15.0
    assert str(client._http.base_url).rstrip("/") == DEFAULT_BASE_URL
    client.close()


def test_base_url_with_a_path_prefix_is_kept():
    recorder = Recorder(json_response(200, payment_json()))
    with GovukPayClient(API_KEY, "http://localhost:5000/emulator", transport=httpx.MockTransport(recorder)) as client:
        client.get_payment(PAYMENT_ID)
    assert str(recorder.requests[0].url) == f"http://localhost:5000/emulator/v1/payments/{PAYMENT_ID}"


# --- logging ------------------------------------------------------------------------------------


def test_logs_method_path_status_and_attempt_but_never_secrets(caplog):
    client, _, _ = make_client(httpx.Response(503), json_response(200, successful_payment_json()))
    with caplog.at_level(logging.DEBUG, logger="app.integrations.govuk_pay.client"):
        payment = client.get_payment(PAYMENT_ID)
    text = caplog.text
    assert f"GET /v1/payments/{PAYMENT_ID} -> 503" in text
    assert "attempt 1/4" in text and "attempt 2/4" in text
    assert " ms " in text
    assert API_KEY not in text
    for secret in ("444433", "Sam Smith", "04/29"):
        assert secret not in text
        assert secret not in repr(payment)
    assert API_KEY not in repr(client)


def test_search_filters_are_not_logged(caplog):
    client, _, _ = make_client(json_response(200, {"total": 0, "count": 0, "page": 1, "results": []}))
    with caplog.at_level(logging.DEBUG, logger="app.integrations.govuk_pay.client"):
        client.search_payments(email="sam@example.com", last_digits_card_number="1111")
    assert "GET /v1/payments -> 200" in caplog.text
    assert "sam@example.com" not in caplog.text and "1111" not in caplog.text


def test_next_url_is_kept_out_of_the_repr():
    client, _, _ = make_client(json_response(201, payment_json()))
    assert NEXT_URL not in repr(create(client))


# --- money --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "pence"),
    [
        ("12.34", 1234),
        (Decimal("12.34"), 1234),
        ("0.01", 1),
        ("12", 1200),
        ("12.5", 1250),
        ("12.000", 1200),
        (" 7.10 ", 710),
        ("-3.21", -321),
        ("0", 0),
        ("0E+1000000000", 0),
        (Decimal("1E+2"), 10000),
        (Decimal("100000.00"), 10000000),
        (15, 1500),
    ],
)
def test_pence_from_pounds(value, pence):
    assert pence_from_pounds(value) == pence


@pytest.mark.parametrize(
    "value",
    [
        "0.001",
        "12.345",
        Decimal("0.005"),
        "1E-999999999",
        "NaN",
        "Infinity",
        "",
        "£12",
        "1,000",
        "abc",
        12.34,
        0.1,
        True,
    ]
    + [Decimal("1E+20")],
)
def test_pence_from_pounds_refuses_sub_pennies_floats_and_junk(value):
    with pytest.raises(ValueError):
        pence_from_pounds(value)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_pence_round_trip_through_decimal_pounds(pence):
    pounds = Decimal(pence).scaleb(-2)
    assert pence_from_pounds(pounds) == pence
    assert pence_from_pounds(str(pounds)) == pence


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=1, max_value=9))
def test_any_fraction_of_a_penny_is_refused(pence, tenth):
    with pytest.raises(ValueError, match="fractions of a penny"):
        pence_from_pounds(Decimal(pence).scaleb(-2) + Decimal(tenth).scaleb(-3))


# --- webhooks -----------------------------------------------------------------------------------

WEBHOOK_BODY = b'{"webhook_message_id":"abc","event_type":"card_payment_captured","resource_id":"x"}'
SECRET = "webhook_live_signing_secret_123"


def test_sign_webhook_is_lower_case_hex_hmac_sha256():
    import hashlib
    import hmac

    signature = sign_webhook(WEBHOOK_BODY, SECRET)
    assert signature == hmac.new(SECRET.encode(), WEBHOOK_BODY, hashlib.sha256).hexdigest()
    assert signature == signature.lower() and len(signature) == 64


def test_verify_webhook_signature_accepts_the_right_signature():
    assert verify_webhook_signature(WEBHOOK_BODY, sign_webhook(WEBHOOK_BODY, SECRET), SECRET) is True


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not-hex",
        "é" * 64,
        sign_webhook(WEBHOOK_BODY, "another secret"),
        sign_webhook(WEBHOOK_BODY, SECRET)[:-1],
    ],
)
def test_verify_webhook_signature_rejects_missing_and_wrong_signatures(signature):
    assert verify_webhook_signature(WEBHOOK_BODY, signature, SECRET) is False


def test_verify_webhook_signature_rejects_a_changed_body_and_an_empty_secret():
    signature = sign_webhook(WEBHOOK_BODY, SECRET)
    assert verify_webhook_signature(WEBHOOK_BODY + b" ", signature, SECRET) is False
    assert verify_webhook_signature(WEBHOOK_BODY, sign_webhook(WEBHOOK_BODY, ""), "") is False


def test_verify_webhook_signature_uses_the_raw_utf8_bytes():
    body = '{"description":"Treth y cyngor – Siân"}'.encode()
    assert verify_webhook_signature(body, sign_webhook(body, "sëcret"), "sëcret") is True
    assert verify_webhook_signature(body, sign_webhook(body, "sëcret").upper(), "sëcret") is True
