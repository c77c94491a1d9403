"""The built-in GOV.UK Pay emulator against the contract in ../shared/spec/govuk-pay.md.

Almost everything runs through Flask's test client (no network, no IMS app, no database); a
few fault-injection tests need a real socket and use the live emulator on 127.0.0.1. Every
hosted page these tests see passes the project's page check (one h1, title starts with it,
CSRF in forms, valid HTML, unique ids) through PageCheckedClient.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from app.integrations.govuk_pay.emulator import Account, FrozenClock, create_app
from app.integrations.govuk_pay.emulator.settings import DEFAULT_WEBHOOK_RETRY_SCHEDULE, settings_from_environment
from tests.govuk_pay_emulator import (
    PARKING_API_KEY,
    TEST_API_KEY,
    TEST_WEBHOOK_SECRET,
    RecordingSender,
    TestClientEmulator,
)
from tests.pages import error_summary, h1, inline_errors, link_href, main_text, title

RETURN_URL = "https://ims.example/pay/return/token-1"
WEBHOOK_URL = "https://ims.example/webhooks/govuk-pay"
TEST_MARKING = "Test payment: no real money is taken — GOV.UK Pay emulator"


def new_emulator(settings_factory, **overrides) -> TestClientEmulator:
    return TestClientEmulator(create_app(settings_factory(**overrides)))


def next_url(payment: dict) -> str:
    return payment["_links"]["next_url"]["href"]


def get_payment(emu: TestClientEmulator, payment_id: str, key: str | None = None) -> dict:
    response = emu.api("GET", f"/v1/payments/{payment_id}", key=key)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def state(emu: TestClientEmulator, payment_id: str) -> dict:
    return get_payment(emu, payment_id)["state"]


def assert_error(response, status: int, code: str, description: str | None = None, **extra):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == code
    if description is not None:
        assert body["description"] == description
    for name, value in extra.items():
        assert body.get(name) == value
    return body


def paid_payment(emu: TestClientEmulator, **overrides) -> dict:
    payment = emu.create_payment(**overrides)
    response = emu.pay(next_url(payment))
    assert response.status_code == 302, response.get_data(as_text=True)
    return get_payment(emu, payment["payment_id"])


# --- start-up and settings ----------------------------------------------------------------------


def test_refused_in_production(monkeypatch, govuk_pay_emulator_settings):
    monkeypatch.setenv("IMS_ENV", "production")
    with pytest.raises(RuntimeError, match="production"):
        create_app(govuk_pay_emulator_settings())


@pytest.mark.parametrize("key", ["api_live_abc123", "sk_live_whatever"])
def test_only_test_keys_are_accepted(govuk_pay_emulator_settings, key):
    with pytest.raises(RuntimeError, match="only accepts test API keys"):
        create_app(govuk_pay_emulator_settings(accounts={key: Account("x")}))


def test_settings_from_environment():
    settings = settings_from_environment(
        {
            "GOVUK_PAY_API_KEY": "api_test_default",
            "GOVUK_PAY_API_KEY_PARKING": "api_test_parking",
            "GOVUK_PAY_WEBHOOK_SECRET": "s1",
            "GOVUK_PAY_WEBHOOK_SECRET_PARKING": "s2",
            "GOVUK_PAY_EMULATOR_WEBHOOK_URL": "http://127.0.0.1:5000/webhooks/govuk-pay",
            "GOVUK_PAY_EMULATOR_PUBLIC_URL": "http://127.0.0.1:5001",
            "GOVUK_PAY_EMULATOR_DB": "/tmp/emulator.db",
            "GOVUK_PAY_EMULATOR_SECRET_KEY": "k" * 40,
            "GOVUK_PAY_EMULATOR_WEBHOOK_RETRY_SECONDS": "1,2",
            "GOVUK_PAY_EMULATOR_SEARCH_LAG_SECONDS": "5",
        }
    )
    assert {key: (a.name, a.webhook_secret) for key, a in settings.accounts.items()} == {
        "api_test_default": ("default", "s1"),
        "api_test_parking": ("parking", "s2"),
    }
    assert {a.webhook_url for a in settings.accounts.values()} == {"http://127.0.0.1:5000/webhooks/govuk-pay"}
    assert settings.public_url == "http://127.0.0.1:5001"
    assert settings.database_path == "/tmp/emulator.db"
    assert settings.secret_key == "k" * 40
    assert settings.webhook_retry_schedule == (timedelta(seconds=1), timedelta(seconds=2))
    assert settings.search_lag == timedelta(seconds=5)
    assert settings.background_webhooks is True
    defaults = settings_from_environment({"GOVUK_PAY_API_KEY": "api_test_x"})
    assert defaults.database_path == "instance/govuk-pay-emulator.db"
    assert defaults.webhook_retry_schedule == DEFAULT_WEBHOOK_RETRY_SCHEDULE
    assert defaults.rate_limit_per_second == 15


def test_state_survives_a_restart(tmp_path, govuk_pay_emulator_settings):
    path = str(tmp_path / "emulator.db")
    first = new_emulator(govuk_pay_emulator_settings, database_path=path)
    payment = first.create_payment()
    first.emulator.store.close()
    second = new_emulator(govuk_pay_emulator_settings, database_path=path)
    assert get_payment(second, payment["payment_id"])["state"] == {"status": "created", "finished": False}


# --- auth, isolation, unknown routes -----------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer api_test_unknown", f"Basic {TEST_API_KEY}"])
def test_bad_or_missing_key_is_401_with_no_body(govuk_pay_emulator, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/v1/payments/abc"), ("POST", "/v1/payments"), ("GET", "/v1/payments")]:
        response = govuk_pay_emulator.client.open(path, method=method, headers=headers, json={"amount": 1})
        assert response.status_code == 401
        assert response.get_data() == b""


def test_another_accounts_payment_is_not_found(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment_id = emu.create_payment()["payment_id"]
    other = PARKING_API_KEY
    assert_error(emu.api("GET", f"/v1/payments/{payment_id}", key=other), 404, "P0200", "Not found")
    assert_error(emu.api("GET", f"/v1/payments/{payment_id}/events", key=other), 404, "P0300", "Not found")
    assert_error(emu.api("POST", f"/v1/payments/{payment_id}/cancel", key=other), 404, "P0500", "Not found")
    assert_error(emu.api("POST", f"/v1/payments/{payment_id}/capture", key=other), 404, "P1000", "Not found")
    refund = {"amount": 1, "refund_amount_available": 1250}
    assert_error(emu.api("POST", f"/v1/payments/{payment_id}/refunds", key=other, json=refund), 404, "P0600")
    assert_error(emu.api("GET", f"/v1/payments/{payment_id}/refunds", key=other), 404, "P0800")
    assert emu.api("GET", "/v1/payments", key=other).get_json()["total"] == 0
    assert emu.api("GET", "/v1/payments").get_json()["total"] == 1


def test_unknown_route_is_404_json(govuk_pay_emulator):
    response = govuk_pay_emulator.api("GET", "/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/json"


# --- create -------------------------------------------------------------------------------------


def test_create_payment(govuk_pay_emulator):
    emu = govuk_pay_emulator
    response = emu.api(
        "POST",
        "/v1/payments",
        json={
            "amount": 12345,
            "reference": "BASKET-42",
            "description": "Parking permit",
            "return_url": RETURN_URL,
            "language": "cy",
            "email": "payer@example.com",
            "metadata": {"fund": "PARK", "ledger_code": 4021, "vat": True},
            "prefilled_cardholder_details": {
                "cardholder_name": "J Bloggs",
                "billing_address": {"line1": "1 High St", "city": "Town", "postcode": "AB1 2CD", "country": "XX1"},
            },
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    payment_id = body["payment_id"]
    assert len(payment_id) == 26 and payment_id.isalnum() and payment_id.islower()
    assert response.headers["Location"] == f"http://localhost/v1/payments/{payment_id}"
    assert body["state"] == {"status": "created", "finished": False}
    assert body["amount"] == 12345 and body["language"] == "cy" and body["email"] == "payer@example.com"
    assert body["metadata"] == {"fund": "PARK", "ledger_code": 4021, "vat": True}
    assert body["refund_summary"] == {"status": "pending", "amount_available": 12345, "amount_submitted": 0}
    assert body["settlement_summary"] == {}
    assert body["payment_provider"] == "sandbox"
    assert body["delayed_capture"] is False and body["moto"] is False and body["authorisation_mode"] == "web"
    assert body["return_url"] == RETURN_URL
    assert body["created_date"] == "2026-03-02T10:00:00.000Z"
    assert body["card_details"] == {
        "cardholder_name": "J Bloggs",
        "billing_address": {
            "line1": "1 High St",
            "line2": None,
            "postcode": "AB1 2CD",
            "city": "Town",
            "country": "GB",
        },
    }
    links = body["_links"]
    assert set(links) == {"self", "next_url", "next_url_post", "events", "refunds", "cancel"}
    assert links["next_url"]["href"].startswith("http://localhost/secure/")
    assert links["next_url_post"]["params"]["chargeTokenId"] == links["next_url"]["href"].rsplit("/", 1)[1]
    assert links["cancel"] == {"href": f"http://localhost/v1/payments/{payment_id}/cancel", "method": "POST"}


def test_links_use_the_public_url(govuk_pay_emulator_settings):
    emu = new_emulator(govuk_pay_emulator_settings, public_url="https://pay.emulator.example/")
    payment = emu.create_payment()
    assert next_url(payment).startswith("https://pay.emulator.example/secure/")
    assert payment["_links"]["self"]["href"].startswith("https://pay.emulator.example/v1/payments/")


VALID = {"amount": 1000, "reference": "REF-1", "description": "Council tax", "return_url": RETURN_URL}


def _without(name: str) -> dict:
    return {k: v for k, v in VALID.items() if k != name}


def iv(field: str, reason: str) -> str:
    return f"Invalid attribute value: {field}. {reason}"


MUST_BE_NUMERIC = "Must be a valid numeric format"
FIREWALL = "Request blocked by security rules. Please consult API documentation for more information."


@pytest.mark.parametrize(
    ("body", "status", "code", "field", "description"),
    [
        (_without("amount"), 400, "P0101", "amount", "Missing mandatory attribute: amount"),
        (VALID | {"amount": None}, 400, "P0101", "amount", "Missing mandatory attribute: amount"),
        (VALID | {"amount": "1000"}, 400, "P0102", "amount", iv("amount", MUST_BE_NUMERIC)),
        (VALID | {"amount": 10.5}, 400, "P0102", "amount", None),
        (VALID | {"amount": 0}, 422, "P0102", "amount", iv("amount", "Must be greater than or equal to 1")),
        (
            VALID | {"amount": 10_000_001},
            422,
            "P0102",
            "amount",
            iv("amount", "Must be less than or equal to 10000000"),
        ),
        (VALID | {"reference": "  "}, 400, "P0101", "reference", "Missing mandatory attribute: reference"),
        (_without("description"), 400, "P0101", "description", None),
        (VALID | {"reference": 12}, 400, "P0102", "reference", iv("reference", "Must be a valid string format")),
        (
            VALID | {"reference": "R" * 256},
            422,
            "P0102",
            "reference",
            iv("reference", "Must be less than or equal to 255 characters length"),
        ),
        (VALID | {"description": "D" * 256}, 422, "P0102", "description", None),
        (_without("return_url"), 400, "P0101", "return_url", "Missing mandatory attribute: return_url"),
        (
            VALID | {"return_url": "not a url"},
            422,
            "P0102",
            "return_url",
            iv("return_url", "Must be a valid URL format"),
        ),
        (VALID | {"return_url": "https://x.example/" + "a" * 2000}, 422, "P0102", "return_url", None),
        (VALID | {"language": "fr"}, 422, "P0102", "language", iv("language", 'Must be "en" or "cy"')),
        (VALID | {"language": 7}, 400, "P0102", "language", None),
        (VALID | {"email": "e" * 250 + "@x.uk"}, 422, "P0102", "email", None),
        (
            VALID | {"delayed_capture": "yes"},
            400,
            "P0102",
            "delayed_capture",
            iv("delayed_capture", "Must be true or false"),
        ),
        (VALID | {"authorisation_mode": "moto_api"}, 400, "P0104", "return_url", "Unexpected attribute: return_url"),
        (_without("return_url") | {"authorisation_mode": "moto_api"}, 422, "P0195", None, None),
        (
            VALID | {"metadata": {f"k{i}": i for i in range(16)}},
            422,
            "P0102",
            "metadata",
            iv("metadata", "Cannot have more than 15 key-value pairs"),
        ),
        (VALID | {"metadata": {"k": {"nested": 1}}}, 422, "P0102", "metadata", None),
        (VALID | {"metadata": {"k" * 31: 1}}, 422, "P0102", "metadata", None),
        (VALID | {"metadata": {"Fund": 1, "fund": 2}}, 422, "P0102", "metadata", None),
        (VALID | {"metadata": {"k": "v" * 101}}, 422, "P0102", "metadata", None),
        (VALID | {"metadata": []}, 422, "P0102", "metadata", None),
        (
            VALID | {"prefilled_cardholder_details": {"cardholder_name": "N" * 256}},
            422,
            "P0102",
            "cardholder_name",
            None,
        ),
        (
            VALID | {"prefilled_cardholder_details": {"billing_address": {"postcode": "P" * 26}}},
            422,
            "P0102",
            "postcode",
            None,
        ),
        (VALID | {"reference": "A<B"}, 400, "P0920", None, FIREWALL),
        (VALID | {"description": 'say "hi"'}, 400, "P0920", None, FIREWALL),
        (VALID | {"description": "a|b"}, 400, "P0920", None, FIREWALL),
        (VALID | {"reference": "back\\slash"}, 400, "P0920", None, FIREWALL),
    ],
)
def test_create_validation(govuk_pay_emulator, body, status, code, field, description):
    response = govuk_pay_emulator.api("POST", "/v1/payments", json=body)
    error = assert_error(response, status, code, description)
    assert error.get("field") == field


def test_moto_is_refused_unless_the_account_has_it_switched_on(govuk_pay_emulator):
    # In the tests the default account has MOTO on (telephone payments) and parking does not.
    refused = govuk_pay_emulator.api("POST", "/v1/payments", key=PARKING_API_KEY, json=VALID | {"moto": True})
    assert assert_error(refused, 422, "P0196", None).get("field") == "moto"
    made = govuk_pay_emulator.api("POST", "/v1/payments", json=VALID | {"moto": True})
    assert made.status_code == 201 and made.get_json()["moto"] is True


def test_create_rejects_bad_json_and_what_the_firewall_blocks(govuk_pay_emulator):
    emu = govuk_pay_emulator
    headers = {"Content-Type": "application/json"}
    assert_error(
        emu.api("POST", "/v1/payments", data=b"{not json", headers=headers), 400, "P0197", "Unable to parse JSON"
    )
    assert_error(emu.api("POST", "/v1/payments", data=b"[1, 2]", headers=headers), 400, "P0197")
    assert_error(emu.api("POST", "/v1/payments", data=b"", headers=headers), 400, "P0920")
    text = {"Content-Type": "text/plain"}
    assert_error(emu.api("POST", "/v1/payments", data=json.dumps(VALID), headers=text), 400, "P0920")


def test_delayed_capture_and_prefill_country_default(govuk_pay_emulator):
    payment = govuk_pay_emulator.create_payment(
        delayed_capture=True, prefilled_cardholder_details={"billing_address": {"line1": "1 Road"}}
    )
    assert payment["delayed_capture"] is True
    assert payment["card_details"]["billing_address"]["country"] == "GB"


# --- idempotency --------------------------------------------------------------------------------


def test_idempotency_key(govuk_pay_emulator):
    emu = govuk_pay_emulator
    headers = {"Idempotency-Key": "attempt-0001"}
    first = emu.api("POST", "/v1/payments", json=VALID, headers=headers)
    assert first.status_code == 201
    # Same key, same body (keys in another order): the original payment, 200 not 201.
    replay = emu.api("POST", "/v1/payments", json=dict(reversed(list(VALID.items()))), headers=headers)
    assert replay.status_code == 200
    assert replay.get_json()["payment_id"] == first.get_json()["payment_id"]
    assert "Location" not in replay.headers
    assert next_url(replay.get_json()) != next_url(first.get_json())  # a fresh single-use link
    # Same key, another body: 409.
    conflict = emu.api("POST", "/v1/payments", json=VALID | {"amount": 999}, headers=headers)
    assert_error(conflict, 409, "P0191")
    # Keys are per account.
    other = emu.api("POST", "/v1/payments", key=PARKING_API_KEY, json=VALID | {"amount": 999}, headers=headers)
    assert other.status_code == 201
    # After 24 hours the key can be used again.
    emu.advance(hours=24, seconds=1)
    again = emu.api("POST", "/v1/payments", json=VALID, headers=headers)
    assert again.status_code == 201
    assert again.get_json()["payment_id"] != first.get_json()["payment_id"]


@pytest.mark.parametrize("key", ["", "has space", "under_score", "x" * 256])
def test_invalid_idempotency_key_is_422(govuk_pay_emulator, key):
    response = govuk_pay_emulator.api("POST", "/v1/payments", json=VALID, headers={"Idempotency-Key": key})
    assert_error(response, 422, "P0102", header="Idempotency-Key")


# --- the hosted journey and the state machine ---------------------------------------------------


def test_successful_card_payment(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment(email="payer@example.com")
    payment_id = payment["payment_id"]
    browser = emu.browser()

    response = browser.get(next_url(payment))
    assert response.status_code == 303
    assert state(emu, payment_id) == {"status": "started", "finished": False}
    card_page = browser.get(response.headers["Location"])
    assert h1(card_page.text) == "Enter card details"
    assert title(card_page.text).startswith("Enter card details")
    assert TEST_MARKING in main_text(card_page.text)
    for autocomplete in ("cc-number", "cc-exp-month", "cc-exp-year", "cc-name", "cc-csc"):
        assert f'autocomplete="{autocomplete}"' in card_page.text
    assert 'value="payer@example.com"' in card_page.text
    assert "GOV.UK" not in h1(card_page.text) and "govuk-header__logotype" not in card_page.text
    assert "build/css/application.css" in card_page.text
    csp = card_page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "form-action 'self' https://ims.example" in csp

    final = emu.pay(next_url(get_payment(emu, payment_id)))  # the payer resumes with a fresh link
    assert final.status_code == 302
    assert final.headers["Location"] == RETURN_URL  # nothing appended
    body = get_payment(emu, payment["payment_id"])
    assert body["state"] == {"status": "success", "finished": True}
    assert body["card_details"] == {
        "last_digits_card_number": "1111",
        "first_digits_card_number": "444433",
        "cardholder_name": "Test Payer",
        "expiry_date": "12/99",
        "billing_address": {
            "line1": "1 Test Street",
            "line2": None,
            "postcode": "TE1 1ST",
            "city": "Testtown",
            "country": "GB",
        },
        "card_brand": "Visa",
        "card_type": "credit",
    }
    assert body["settlement_summary"] == {
        "capture_submit_time": "2026-03-02T10:00:00.000Z",
        "captured_date": "2026-03-02",
    }
    assert body["provider_id"]
    assert body["email"] == "payer@example.com"
    assert body["refund_summary"] == {"status": "available", "amount_available": 1250, "amount_submitted": 0}
    assert set(body["_links"]) == {"self", "events", "refunds"}  # no next_url, cancel or capture once finished
    events = emu.api("GET", f"/v1/payments/{payment['payment_id']}/events").get_json()
    assert [e["state"]["status"] for e in events["events"]] == ["created", "started", "submitted", "success"]
    assert events["events"][0]["_links"]["payment_url"]["href"].endswith(payment["payment_id"])
    assert events["_links"]["self"]["href"].endswith("/events")


def test_confirm_page_shows_the_card(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    browser = emu.browser()
    card_url = browser.get(next_url(payment)).headers["Location"]
    page = browser.get(card_url)
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {
        "csrf_token": csrf,
        "card_number": "5555 5555 5555 4444",
        "expiry_month": "3",
        "expiry_year": "30",
        "cardholder_name": "Ann Payer",
        "cvc": "321",
        "address_line1": "2 Lane",
        "address_city": "City",
        "address_postcode": "CI1 1TY",
    }
    response = browser.post(card_url, data=form)
    assert response.status_code == 303
    assert state(emu, payment["payment_id"])["status"] == "submitted"
    confirm_page = browser.get(response.headers["Location"])
    assert h1(confirm_page.text) == "Confirm your payment"
    text = main_text(confirm_page.text)
    assert "Card ending 4444" in text and "03/30" in text and "Ann Payer" in text and "£12.50" in text
    assert TEST_MARKING in text
    # A fresh next_url while submitted resumes at the confirm page.
    resumed = emu.browser()
    first = resumed.get(next_url(get_payment(emu, payment["payment_id"])))
    assert first.headers["Location"].endswith("/confirm")


@pytest.mark.parametrize(
    ("card", "status", "code", "heading"),
    [
        ("4000000000000002", "failed", "P0010", "Your payment has been declined"),
        ("4000000000000069", "failed", "P0010", "Your payment has been declined"),
        ("4000000000000127", "failed", "P0010", "Your payment has been declined"),
        ("4000000000000119", "error", "P0050", "We're experiencing technical problems"),
    ],
)
def test_test_cards_that_fail(govuk_pay_emulator, card, status, code, heading):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    page = emu.pay(next_url(payment), card)
    assert page.status_code == 200
    assert h1(page.text) == heading
    assert TEST_MARKING in main_text(page.text)
    assert "no money has been taken" in main_text(page.text).lower()
    assert link_href(page.text, "Continue") == RETURN_URL
    body = get_payment(emu, payment["payment_id"])
    assert body["state"]["status"] == status and body["state"]["code"] == code and body["state"]["finished"]
    assert "next_url" not in body["_links"] and "cancel" not in body["_links"]
    assert body["refund_summary"]["status"] == "unavailable"


@pytest.mark.parametrize(
    ("card", "brand"),
    [
        ("4242424242424242", "Visa"),
        ("5105105105105100", "Mastercard"),
        ("371449635398431", "American Express"),
        ("3566002020360505", "JCB"),
        ("6011000990139424", "Discover"),
        ("36148900647913", "Diners Club"),
        ("4000056655665556", "Visa"),
        ("79927398713", None),  # too short: never reaches a brand
    ],
)
def test_test_cards_that_succeed(govuk_pay_emulator, card, brand):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    response = emu.pay(next_url(payment), card)
    if brand is None:
        assert inline_errors(response.text) == ["Card number is not correct"]
        return
    assert response.status_code == 302
    details = get_payment(emu, payment["payment_id"])["card_details"]
    assert details["card_brand"] == brand and details["last_digits_card_number"] == card[-4:]


def test_maestro_is_not_accepted_and_nothing_changes(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    page = emu.pay(next_url(payment), "6759649826438453")
    assert page.status_code == 200
    assert title(page.text).startswith("Error: Enter card details")
    assert "not accepted" in error_summary(page.text)[0]
    assert state(emu, payment["payment_id"])["status"] == "started"


@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        (
            {
                "card_number": "",
                "expiry_month": "",
                "expiry_year": "",
                "cardholder_name": "",
                "cvc": "",
                "address_line1": "",
                "address_city": "",
                "address_postcode": "",
            },
            [
                "Enter your card number",
                "Enter the expiry date",
                "Enter the name as it appears on the card",
                "Enter the card security code",
                "Enter the first line of your billing address",
                "Enter your town or city",
                "Enter your postcode",
            ],
        ),
        ({"card_number": "4444333322221112"}, ["Card number is not correct"]),
        ({"card_number": "4444-3333-abcd-1111"}, ["Card number is not correct"]),
        ({"expiry_month": "1", "expiry_year": "2026"}, ["Card has expired"]),
        ({"expiry_month": "13"}, ["Enter a real expiry date, for example 03 29"]),
        ({"cvc": "12"}, ["Card security code must be 3 digits"]),
        ({"email": "not-an-email"}, ["Enter an email address in the correct format, like name@example.com"]),
    ],
)
def test_card_form_errors(govuk_pay_emulator, fields, messages):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    page = emu.pay(next_url(payment), **fields)
    assert page.status_code == 200
    assert title(page.text).startswith("Error: Enter card details")
    assert error_summary(page.text) == messages
    assert inline_errors(page.text) == messages
    assert state(emu, payment["payment_id"])["status"] == "started"


def test_next_url_is_single_use_and_get_gives_a_fresh_one(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    first_link = next_url(payment)
    assert emu.browser().get(first_link).status_code == 303
    before = emu.api("GET", f"/v1/payments/{payment['payment_id']}/events").get_json()
    reused = emu.browser().get(first_link)
    assert reused.status_code == 400
    assert h1(reused.text) == "This link has expired"
    assert TEST_MARKING in main_text(reused.text)
    after = emu.api("GET", f"/v1/payments/{payment['payment_id']}/events").get_json()
    assert after == before  # a used link changes nothing
    unknown = emu.browser().get("http://localhost/secure/not-a-token")
    assert unknown.status_code == 400

    fresh = [next_url(get_payment(emu, payment["payment_id"])) for _ in range(2)]
    assert len({first_link, *fresh}) == 3
    response = emu.pay(fresh[1])  # the payer resumes with a fresh link and pays
    assert response.status_code == 302
    body = get_payment(emu, payment["payment_id"])
    assert body["state"]["status"] == "success" and "next_url" not in body["_links"]
    # An older, unused link of a finished payment cannot restart it: it sends the payer back to the service.
    late = emu.browser().get(fresh[0])
    assert late.status_code == 302 and late.headers["Location"] == RETURN_URL


def test_next_url_post(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    post = payment["_links"]["next_url_post"]
    response = emu.browser().post(post["href"], data=post["params"])
    assert response.status_code == 303
    assert state(emu, payment["payment_id"])["status"] == "started"


def test_card_pages_need_the_browser_that_used_the_link(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    card_url = emu.browser().get(next_url(payment)).headers["Location"]
    stranger = emu.browser()
    assert stranger.get(card_url).status_code == 400
    assert stranger.post(card_url + "/cancel", data={}).status_code == 400
    assert state(emu, payment["payment_id"])["status"] == "started"


def test_forms_need_the_csrf_token(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    browser = emu.browser()
    card_url = browser.get(next_url(payment)).headers["Location"]
    response = browser.post(card_url + "/cancel", data={})
    assert response.status_code == 400
    assert h1(response.text) == "This page has expired"
    assert state(emu, payment["payment_id"])["status"] == "started"


def test_payer_cancels(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    page = emu.pay(next_url(payment), confirm=False)
    assert h1(page.text) == "Your payment has been cancelled"
    assert link_href(page.text, "Continue") == RETURN_URL
    assert state(emu, payment["payment_id"]) == {
        "status": "failed",
        "finished": True,
        "code": "P0030",
        "message": "Payment was cancelled by the user",
    }


def test_own_failure_pages_redirect_straight_back(govuk_pay_emulator_settings):
    emu = new_emulator(govuk_pay_emulator_settings, own_failure_pages=True)
    declined = emu.create_payment()
    response = emu.pay(next_url(declined), "4000000000000002")
    assert response.status_code == 302 and response.headers["Location"] == RETURN_URL
    cancelled = emu.create_payment()
    response = emu.pay(next_url(cancelled), confirm=False)
    assert response.status_code == 302 and response.headers["Location"] == RETURN_URL
    assert state(emu, cancelled["payment_id"])["code"] == "P0030"


def test_payments_expire_after_90_minutes(govuk_pay_emulator):
    emu = govuk_pay_emulator
    untouched = emu.create_payment()
    on_card_page = emu.create_payment()
    browser = emu.browser()
    card_url = browser.get(next_url(on_card_page)).headers["Location"]

    emu.advance(minutes=89, seconds=59)
    assert state(emu, untouched["payment_id"])["status"] == "created"
    emu.advance(seconds=1)
    assert state(emu, untouched["payment_id"]) == {
        "status": "failed",
        "finished": True,
        "code": "P0020",
        "message": "Payment expired",
    }
    events = emu.api("GET", f"/v1/payments/{untouched['payment_id']}/events").get_json()["events"]
    assert events[-1]["updated"] == "2026-03-02T11:30:00.000Z"
    page = browser.get(card_url)
    assert h1(page.text) == "Your payment session has expired"
    assert state(emu, on_card_page["payment_id"])["code"] == "P0020"
    # Expired payments are found as expired by searches too.
    assert emu.api("GET", "/v1/payments?state=failed").get_json()["total"] == 2


def test_submitted_payment_expires_before_confirm(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    browser = emu.browser()
    card_url = browser.get(next_url(payment)).headers["Location"]
    page = browser.get(card_url)
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {
        "csrf_token": csrf,
        "card_number": "4444333322221111",
        "expiry_month": "12",
        "expiry_year": "2099",
        "cardholder_name": "A",
        "cvc": "123",
        "address_line1": "1",
        "address_city": "C",
        "address_postcode": "P",
    }
    confirm_url = browser.post(card_url, data=form).headers["Location"]
    confirm_page = browser.get(confirm_url)
    emu.advance(minutes=91)
    csrf = confirm_page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = browser.post(confirm_url, data={"csrf_token": csrf})
    assert h1(response.text) == "Your payment session has expired"
    assert state(emu, payment["payment_id"])["code"] == "P0020"


# --- cancel and capture ---------------------------------------------------------------------------


def test_service_cancel(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment()
    response = emu.api("POST", f"/v1/payments/{payment['payment_id']}/cancel")
    assert response.status_code == 204 and response.get_data() == b""
    assert state(emu, payment["payment_id"]) == {
        "status": "cancelled",
        "finished": True,
        "code": "P0040",
        "message": "Payment was cancelled by the service",
    }
    again = emu.api("POST", f"/v1/payments/{payment['payment_id']}/cancel")
    assert_error(again, 400, "P0501", "Cancellation of payment failed")
    paid = paid_payment(emu)
    assert_error(emu.api("POST", f"/v1/payments/{paid['payment_id']}/cancel"), 400, "P0501")
    assert_error(emu.api("POST", "/v1/payments/nope/cancel"), 404, "P0500", "Not found")
    # The payer's link to a cancelled payment shows the cancelled page.
    page = emu.pay(next_url(payment))
    assert page.status_code == 200 and h1(page.text) == "Your payment has been cancelled"


def test_delayed_capture(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment(delayed_capture=True)
    payment_id = payment["payment_id"]
    assert_error(emu.api("POST", f"/v1/payments/{payment_id}/capture"), 409, "P1003", "Payment cannot be captured")
    assert emu.pay(next_url(payment)).status_code == 302
    body = get_payment(emu, payment_id)
    assert body["state"] == {"status": "capturable", "finished": False}
    assert body["_links"]["capture"]["method"] == "POST" and "cancel" in body["_links"]
    assert body["settlement_summary"] == {} and body["refund_summary"]["status"] == "pending"
    emu.advance(hours=3)
    assert emu.api("POST", f"/v1/payments/{payment_id}/capture").status_code == 204
    body = get_payment(emu, payment_id)
    assert body["state"] == {"status": "success", "finished": True}
    assert body["settlement_summary"]["capture_submit_time"] == "2026-03-02T13:00:00.000Z"
    assert "capture" not in body["_links"]
    assert emu.api("POST", f"/v1/payments/{payment_id}/capture").status_code == 204  # already captured: no change
    statuses = [e["state"]["status"] for e in emu.api("GET", f"/v1/payments/{payment_id}/events").get_json()["events"]]
    assert statuses == ["created", "started", "submitted", "capturable", "success"]

    failed = emu.create_payment()
    emu.pay(next_url(failed), "4000000000000002")
    assert_error(
        emu.api("POST", f"/v1/payments/{failed['payment_id']}/capture"), 400, "P1001", "Capture of payment failed"
    )


def test_capture_deadline_is_120_hours(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = emu.create_payment(delayed_capture=True)
    emu.pay(next_url(payment))
    emu.advance(hours=119, minutes=59)
    assert state(emu, payment["payment_id"])["status"] == "capturable"
    emu.advance(minutes=1)
    assert state(emu, payment["payment_id"])["code"] == "P0020"
    assert_error(emu.api("POST", f"/v1/payments/{payment['payment_id']}/capture"), 400, "P1001")


# --- refunds --------------------------------------------------------------------------------------


def refund(emu, payment_id, amount, available=None, **kwargs):
    body = {"amount": amount}
    if available is not None:
        body["refund_amount_available"] = available
    return emu.api("POST", f"/v1/payments/{payment_id}/refunds", json=body, **kwargs)


def test_refunds(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = paid_payment(emu)
    payment_id = payment["payment_id"]
    assert_error(refund(emu, payment_id, 100, 1249), 412, "P0604", "Refund amount available mismatch.")
    over = refund(emu, payment_id, 1251, 1250)
    assert_error(
        over, 400, "P0603", "The payment is not available for refund. Payment refund status: amount_not_available"
    )

    first = refund(emu, payment_id, 250, 1250)
    assert first.status_code == 202
    body = first.get_json()
    assert body["amount"] == 250 and body["status"] == "success"  # test accounts: straight to success
    assert body["_links"]["self"]["href"].endswith(f"/v1/payments/{payment_id}/refunds/{body['refund_id']}")
    assert body["_links"]["payment"]["href"].endswith(f"/v1/payments/{payment_id}")
    summary = get_payment(emu, payment_id)["refund_summary"]
    assert summary == {"status": "available", "amount_available": 1000, "amount_submitted": 250}
    assert_error(refund(emu, payment_id, 100, 1250), 412, "P0604")  # a retried refund cannot refund twice

    assert refund(emu, payment_id, 1000).status_code == 202  # refund_amount_available is optional
    assert get_payment(emu, payment_id)["refund_summary"] == {
        "status": "full",
        "amount_available": 0,
        "amount_submitted": 1250,
    }
    assert_error(
        refund(emu, payment_id, 1, 0),
        400,
        "P0603",
        "The payment is not available for refund. Payment refund status: full",
    )

    got = emu.api("GET", f"/v1/payments/{payment_id}/refunds/{body['refund_id']}")
    assert got.status_code == 200 and got.get_json()["refund_id"] == body["refund_id"]
    assert_error(emu.api("GET", f"/v1/payments/{payment_id}/refunds/nope"), 404, "P0700", "Not found")
    listed = emu.api("GET", f"/v1/payments/{payment_id}/refunds").get_json()
    assert listed["payment_id"] == payment_id
    assert [r["amount"] for r in listed["_embedded"]["refunds"]] == [250, 1000]

    other = paid_payment(emu)
    assert_error(emu.api("GET", f"/v1/payments/{other['payment_id']}/refunds/{body['refund_id']}"), 404, "P0700")


def test_refund_not_available_until_success(govuk_pay_emulator):
    emu = govuk_pay_emulator
    created = emu.create_payment()
    assert_error(
        refund(emu, created["payment_id"], 1),
        400,
        "P0603",
        "The payment is not available for refund. Payment refund status: pending",
    )
    emu.api("POST", f"/v1/payments/{created['payment_id']}/cancel")
    unavailable = "The payment is not available for refund. Payment refund status: unavailable"
    assert_error(refund(emu, created["payment_id"], 1), 400, "P0603", unavailable)


@pytest.mark.parametrize(
    ("body", "status", "code", "description"),
    [
        ({}, 400, "P0601", "Missing mandatory attribute: amount"),
        ({"amount": "1"}, 400, "P0602", "Invalid attribute value: amount. Must be a valid numeric format"),
        ({"amount": 0}, 422, "P0602", "Invalid attribute value: amount. Must be greater than or equal to 1"),
        ({"amount": 10_000_001}, 422, "P0602", None),
    ],
)
def test_refund_validation(govuk_pay_emulator, body, status, code, description):
    emu = govuk_pay_emulator
    payment = paid_payment(emu)
    response = emu.api("POST", f"/v1/payments/{payment['payment_id']}/refunds", json=body)
    assert_error(response, status, code, description)


def test_refund_bad_json(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment = paid_payment(emu)
    response = emu.api(
        "POST", f"/v1/payments/{payment['payment_id']}/refunds", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "P0697", "Unable to parse JSON")


def test_live_like_refunds_stay_submitted(govuk_pay_emulator_settings):
    emu = new_emulator(govuk_pay_emulator_settings, live_like_refunds=True, refund_settle_after=timedelta(hours=2))
    payment = paid_payment(emu)
    payment_id = payment["payment_id"]
    created = refund(emu, payment_id, 500, 1250).get_json()
    assert created["status"] == "submitted"
    assert get_payment(emu, payment_id)["refund_summary"] == {
        "status": "available",
        "amount_available": 750,
        "amount_submitted": 500,
    }
    second = refund(emu, payment_id, 250, 750).get_json()
    emu.settle_refund(second["refund_id"], "error")  # card closed: the money is available again
    assert get_payment(emu, payment_id)["refund_summary"]["amount_available"] == 750
    emu.advance(hours=1)
    assert (
        emu.api("GET", f"/v1/payments/{payment_id}/refunds/{created['refund_id']}").get_json()["status"] == "submitted"
    )
    emu.advance(hours=1)
    assert emu.api("GET", f"/v1/payments/{payment_id}/refunds/{created['refund_id']}").get_json()["status"] == "success"


def test_stripe_mode(govuk_pay_emulator_settings):
    friday = FrozenClock(datetime(2026, 3, 6, 15, 0, tzinfo=UTC))
    emu = new_emulator(govuk_pay_emulator_settings, stripe_mode=True, clock=friday)
    payment = paid_payment(emu, amount=10000)
    assert payment["payment_provider"] == "stripe"
    assert payment["provider_id"].startswith("pi_")
    assert payment["fee"] == 170 and payment["net_amount"] == 9830
    assert payment["settlement_summary"]["settled_date"] == "2026-03-10"  # two working days after Friday
    found = emu.api("GET", "/v1/payments?from_settled_date=2026-03-10&to_settled_date=2026-03-10").get_json()
    assert found["total"] == 1
    assert emu.api("GET", "/v1/payments?from_settled_date=2026-03-11").get_json()["total"] == 0


# --- search ---------------------------------------------------------------------------------------


def test_search_filters_and_paging(govuk_pay_emulator):
    emu = govuk_pay_emulator
    ids = []
    for number in range(5):
        ids.append(emu.create_payment(reference=f"REF-{number}", email=f"p{number}@example.com")["payment_id"])
        emu.advance(minutes=1)
    emu.pay(next_url(get_payment(emu, ids[1])))

    result = emu.api("GET", "/v1/payments?reference=ref-1").get_json()
    assert [r["payment_id"] for r in result["results"]] == [ids[1]]
    assert result["results"][0]["state"]["status"] == "success"
    assert "next_url" not in result["results"][0]["_links"]
    assert emu.api("GET", "/v1/payments?state=success").get_json()["total"] == 1
    assert emu.api("GET", "/v1/payments?email=P3@EXAMPLE").get_json()["total"] == 1
    assert (
        emu.api("GET", "/v1/payments?last_digits_card_number=1111&first_digits_card_number=444433").get_json()["total"]
        == 1
    )
    assert emu.api("GET", "/v1/payments?card_brand=visa").get_json()["total"] == 1
    assert emu.api("GET", "/v1/payments?cardholder_name=test").get_json()["total"] == 1
    window = emu.api("GET", "/v1/payments?from_date=2026-03-02T10:01:00Z&to_date=2026-03-02T10:03:00Z").get_json()
    assert [r["payment_id"] for r in window["results"]] == [ids[2], ids[1]]  # newest first, to_date exclusive

    first = emu.api("GET", "/v1/payments?display_size=3&state=created").get_json()
    assert first["total"] == 4 and first["count"] == 3 and first["page"] == 1
    assert [r["payment_id"] for r in first["results"]] == [ids[4], ids[3], ids[2]]
    assert set(first["_links"]) == {"self", "first_page", "last_page", "next_page"}
    query = dict(pair.split("=") for pair in urlsplit(first["_links"]["next_page"]["href"]).query.split("&"))
    assert query == {"state": "created", "page": "2", "display_size": "3"}
    second = emu.api("GET", first["_links"]["next_page"]["href"]).get_json()
    assert [r["payment_id"] for r in second["results"]] == [ids[0]]
    assert set(second["_links"]) == {"self", "first_page", "last_page", "prev_page"}
    assert_error(emu.api("GET", "/v1/payments?display_size=2&page=4"), 404, "P0402", "Page not found")
    assert emu.api("GET", "/v1/payments?reference=none").get_json()["total"] == 0  # page 1 of nothing is fine


def test_search_validation(govuk_pay_emulator):
    response = govuk_pay_emulator.api("GET", "/v1/payments?from_date=yesterday&page=0&display_size=501&state=paid")
    assert_error(
        response,
        422,
        "P0401",
        "Invalid parameters: state, from_date, page, display_size. "
        "See Public API documentation for the correct data formats",
    )
    assert govuk_pay_emulator.api("GET", "/v1/payments?display_size=500").status_code == 200


def test_search_lag(govuk_pay_emulator_settings):
    emu = new_emulator(govuk_pay_emulator_settings, search_lag=timedelta(seconds=30))
    payment = emu.create_payment()
    assert emu.api("GET", "/v1/payments").get_json()["total"] == 0
    assert get_payment(emu, payment["payment_id"])["state"]["status"] == "created"  # GET is strongly consistent
    emu.advance(seconds=30)
    assert emu.api("GET", "/v1/payments").get_json()["results"][0]["state"]["status"] == "created"
    emu.api("POST", f"/v1/payments/{payment['payment_id']}/cancel")
    assert emu.api("GET", "/v1/payments").get_json()["results"][0]["state"]["status"] == "created"  # not yet
    emu.advance(seconds=30)
    assert emu.api("GET", "/v1/payments").get_json()["results"][0]["state"]["status"] == "cancelled"


def test_search_refunds(govuk_pay_emulator_settings):
    emu = new_emulator(govuk_pay_emulator_settings, search_lag=timedelta(seconds=10))
    payment = paid_payment(emu)
    refund_id = refund(emu, payment["payment_id"], 100).get_json()["refund_id"]
    assert emu.api("GET", "/v1/refunds").get_json()["total"] == 0
    assert emu.api("GET", f"/v1/payments/{payment['payment_id']}/refunds").get_json()["_embedded"]["refunds"] == []
    emu.advance(seconds=10)
    found = emu.api("GET", "/v1/refunds?from_date=2026-03-02T00:00:00Z").get_json()
    assert found["total"] == 1 and found["results"][0]["refund_id"] == refund_id
    assert found["results"][0]["payment_id"] == payment["payment_id"]
    assert emu.api("GET", "/v1/refunds", key=PARKING_API_KEY).get_json()["total"] == 0
    assert_error(emu.api("GET", "/v1/refunds?to_date=tomorrow"), 422, "P1101")
    assert_error(emu.api("GET", "/v1/refunds?page=9"), 404, "P1100", "Page not found")


# --- rate limits and faults -----------------------------------------------------------------------


def test_rate_limit(govuk_pay_emulator):
    emu = govuk_pay_emulator
    emu.set_rate_limit(3)
    responses = [emu.api("POST", "/v1/payments", json=VALID) for _ in range(4)]
    assert [r.status_code for r in responses] == [201, 201, 201, 429]
    assert_error(responses[-1], 429, "P0900", "Too many requests")
    # Per key and per class: another key, a capture and GETs still go through.
    assert emu.api("POST", "/v1/payments", key=PARKING_API_KEY, json=VALID).status_code == 201
    payment_id = responses[0].get_json()["payment_id"]
    assert emu.api("POST", f"/v1/payments/{payment_id}/capture").status_code == 409
    assert emu.api("GET", f"/v1/payments/{payment_id}").status_code == 200


def test_injected_api_faults(govuk_pay_emulator):
    emu = govuk_pay_emulator
    payment_id = emu.create_payment()["payment_id"]
    emu.inject_fault("error", count=2)
    assert_error(emu.api("POST", "/v1/payments", json=VALID), 500, "P0198", "Downstream system error")
    assert_error(emu.api("GET", f"/v1/payments/{payment_id}"), 500, "P0298")
    assert emu.api("GET", f"/v1/payments/{payment_id}").status_code == 200  # only the next 2 calls

    emu.inject_fault("error", status=502, method="POST", path="/v1/payments/")
    assert emu.api("GET", f"/v1/payments/{payment_id}").status_code == 200  # not a match
    assert_error(emu.api("POST", f"/v1/payments/{payment_id}/cancel"), 502, "P0598")
    emu.inject_fault("unavailable")
    assert_error(emu.api("GET", "/v1/payments"), 503, "P0999")
    emu.inject_fault("blocked")
    assert_error(emu.api("POST", "/v1/payments", json=VALID), 400, "P0920")
    emu.inject_fault("respond", status=403, code="P0941", description="Payment creation is disabled", method="POST")
    assert_error(emu.api("POST", "/v1/payments", json=VALID), 403, "P0941", "Payment creation is disabled")
    emu.inject_fault("drop")
    with pytest.raises(ConnectionAbortedError):
        emu.api("GET", f"/v1/payments/{payment_id}")
    assert state(emu, payment_id)["status"] == "created"


def test_control_endpoints(govuk_pay_emulator):
    emu = govuk_pay_emulator
    client = emu.client
    payment_id = emu.create_payment()["payment_id"]
    assert client.post("/_emulator/faults", json={"kind": "error", "count": 1}).status_code == 201
    assert client.get("/_emulator/faults").get_json()["api"][0]["kind"] == "error"
    assert emu.api("GET", f"/v1/payments/{payment_id}").status_code == 500
    assert client.post("/_emulator/faults", json={"kind": "nonsense"}).status_code == 400
    client.post("/_emulator/faults", json={"kind": "unavailable", "count": 5})
    assert client.delete("/_emulator/faults").get_json()["api"] == []
    assert client.post("/_emulator/clock", json={"advance_seconds": 5400}).get_json() == {
        "now": "2026-03-02T11:30:00.000Z"
    }
    assert state(emu, payment_id)["code"] == "P0020"
    assert client.post("/_emulator/rate-limit", json={"per_second": 1}).status_code == 200
    assert client.post("/_emulator/reset").status_code == 200
    assert_error(emu.api("GET", f"/v1/payments/{payment_id}"), 404, "P0200")
    assert client.get("/_emulator/webhooks").get_json() == {"deliveries": []}


def test_card_error_fault(govuk_pay_emulator):
    emu = govuk_pay_emulator
    emu.client.post("/_emulator/faults", json={"kind": "card_error"})
    payment = emu.create_payment()
    page = emu.pay(next_url(payment))
    assert h1(page.text) == "We're experiencing technical problems"
    assert state(emu, payment["payment_id"])["code"] == "P0050"
    assert emu.pay(next_url(emu.create_payment())).status_code == 302  # only the next one


def test_payer_confirms_but_never_returns(govuk_pay_emulator):
    emu = govuk_pay_emulator
    emu.inject_fault("payer_never_returns")
    payment = emu.create_payment()
    page = emu.pay(next_url(payment))
    assert page.status_code == 200
    assert h1(page.text) == "Payment confirmed"
    assert TEST_MARKING in main_text(page.text)
    assert state(emu, payment["payment_id"])["status"] == "success"


def test_live_faults_over_a_real_socket(fresh_live_govuk_pay_emulator):
    live = fresh_live_govuk_pay_emulator
    with live.http_client(timeout=5) as client:
        created = client.post("/v1/payments", json=VALID)
        assert created.status_code == 201
        payment_id = created.json()["payment_id"]

        live.inject_fault("drop")
        with pytest.raises(httpx.TransportError):
            client.get(f"/v1/payments/{payment_id}")

        # The create happens, but the answer never arrives: only an Idempotency-Key retry finds it.
        live.inject_fault("drop", process=True)
        headers = {"Idempotency-Key": "lost-answer-1"}
        with pytest.raises(httpx.TransportError):
            client.post("/v1/payments", json=VALID, headers=headers)
        retried = client.post("/v1/payments", json=VALID, headers=headers)
        assert retried.status_code == 200

        live.inject_fault("timeout", seconds=0.5)
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"/v1/payments/{payment_id}", timeout=0.1)
        assert client.get(f"/v1/payments/{payment_id}").status_code == 200

        assert client.get("/v1/payments").json()["total"] == 2
        response = client.post("/_emulator/clock", json={"advance_seconds": 60})
        assert response.status_code == 200


def test_live_card_journey_and_concurrent_creates(fresh_live_govuk_pay_emulator):
    from concurrent.futures import ThreadPoolExecutor

    live = fresh_live_govuk_pay_emulator
    with live.http_client(timeout=10) as client:
        payment = client.post("/v1/payments", json=VALID).json()
        assert next_url(payment).startswith(live.base_url + "/secure/")
        final = live.pay(next_url(payment))
        assert final.status_code == 302 and final.headers["Location"] == RETURN_URL
        assert client.get(f"/v1/payments/{payment['payment_id']}").json()["state"]["status"] == "success"

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: client.post("/v1/payments", json=VALID).status_code, range(24)))
        assert statuses == [201] * 24
        assert client.get("/v1/payments").json()["total"] == 25


# --- webhooks -------------------------------------------------------------------------------------


def webhook_emulator(settings_factory, **overrides) -> tuple[TestClientEmulator, RecordingSender]:
    sender = RecordingSender()
    emu = new_emulator(settings_factory, webhook_sender=sender, **overrides)
    emu.set_webhook_target(WEBHOOK_URL)
    return emu, sender


def test_webhooks_are_signed_and_shaped_like_gov_uk_pay(govuk_pay_emulator_settings):
    emu, sender = webhook_emulator(govuk_pay_emulator_settings)
    payment = emu.create_payment()
    emu.pay(next_url(payment))
    assert sender.calls == []  # nothing is sent until delivery runs
    attempts = emu.deliver_due_webhooks()
    assert [a["status"] for a in attempts] == [200, 200, 200]
    assert sender.event_types() == ["card_payment_started", "card_payment_succeeded", "card_payment_captured"]
    for call in sender.calls:
        assert call.url == WEBHOOK_URL
        assert call.headers["Content-Type"] == "application/json"
        expected = hmac.new(TEST_WEBHOOK_SECRET.encode(), call.body, hashlib.sha256).hexdigest()
        assert call.headers["Pay-Signature"] == expected
        body = call.json
        assert set(body) == {
            "webhook_message_id",
            "api_version",
            "created_date",
            "resource_id",
            "resource_type",
            "event_type",
            "resource",
        }
        assert body["api_version"] == 1 and body["resource_type"] == "payment"
        assert body["resource_id"] == payment["payment_id"] == body["resource"]["payment_id"]
        assert body["created_date"].endswith("Z")
    final = sender.calls[-1].json["resource"]
    assert final["state"]["status"] == "success" and final["card_details"]["last_digits_card_number"] == "1111"
    assert len({call.json["webhook_message_id"] for call in sender.calls}) == 3
    assert [d["state"] for d in emu.deliveries()] == ["delivered"] * 3
    assert emu.deliver_due_webhooks() == []

    paid = get_payment(emu, payment["payment_id"])
    refund(emu, paid["payment_id"], 100)
    emu.deliver_due_webhooks()
    assert sender.event_types()[-1] == "card_payment_refunded"


def test_failed_expired_and_other_accounts_webhooks(govuk_pay_emulator_settings):
    emu, sender = webhook_emulator(govuk_pay_emulator_settings)
    declined = emu.create_payment()
    emu.pay(next_url(declined), "4000000000000002")
    parking = emu.create_payment(key=PARKING_API_KEY)
    emu.advance(minutes=90)
    emu.deliver_due_webhooks()  # the tick applies the expiry without anyone reading the payment
    assert sender.event_types() == ["card_payment_started", "card_payment_failed", "card_payment_expired"]
    parking_call = sender.calls[-1]
    assert parking_call.json["resource_id"] == parking["payment_id"]
    secret = emu.settings.accounts[PARKING_API_KEY].webhook_secret
    assert (
        parking_call.headers["Pay-Signature"]
        == hmac.new(secret.encode(), parking_call.body, hashlib.sha256).hexdigest()
    )


def test_webhooks_are_retried_on_the_schedule_then_abandoned(govuk_pay_emulator_settings):
    emu, sender = webhook_emulator(govuk_pay_emulator_settings)
    sender.status = 500
    payment = emu.create_payment()
    emu.browser().get(next_url(payment))  # card_payment_started
    emu.api("POST", f"/v1/payments/{payment['payment_id']}/cancel")  # sends nothing, and nothing can expire
    sender.answer(httpx.ConnectError("refused"))
    assert emu.deliver_due_webhooks()[0]["status"] is None
    delivery = emu.deliveries()[0]
    assert delivery["state"] == "pending" and delivery["due_at"] == "2026-03-02T10:01:00.000000Z"
    assert delivery["attempts"][0]["error"].startswith("ConnectError")
    for wait in DEFAULT_WEBHOOK_RETRY_SCHEDULE:
        emu.advance(wait - timedelta(seconds=1))
        assert emu.deliver_due_webhooks() == []
        emu.advance(seconds=1)
        assert [a["status"] for a in emu.deliver_due_webhooks()] == [500]
    delivery = emu.deliveries()[0]
    assert delivery["state"] == "abandoned" and len(delivery["attempts"]) == 6
    emu.advance(days=10)
    assert emu.deliver_due_webhooks() == []


def test_a_later_2xx_delivers(govuk_pay_emulator_settings):
    emu, sender = webhook_emulator(govuk_pay_emulator_settings, webhook_retry_schedule=(timedelta(seconds=1),))
    sender.answer(503, 204)
    emu.browser().get(next_url(emu.create_payment()))
    emu.deliver_due_webhooks()
    emu.advance(seconds=1)
    emu.deliver_due_webhooks()
    assert [a["status"] for a in emu.deliveries()[0]["attempts"]] == [503, 204]
    assert emu.deliveries()[0]["state"] == "delivered"


def test_webhook_duplicates_reordering_and_delay(govuk_pay_emulator_settings):
    emu, sender = webhook_emulator(govuk_pay_emulator_settings, webhook_duplicate=True, webhook_reorder=True)
    emu.pay(next_url(emu.create_payment()))
    emu.deliver_due_webhooks()
    assert sender.event_types() == [
        "card_payment_captured",
        "card_payment_captured",
        "card_payment_succeeded",
        "card_payment_succeeded",
        "card_payment_started",
        "card_payment_started",
    ]
    assert sender.calls[0].body == sender.calls[1].body  # the same message twice: dedupe on webhook_message_id

    sender.calls.clear()
    emu.set_webhook_options(duplicate=False, reorder=False, delay=timedelta(minutes=5))
    emu.browser().get(next_url(emu.create_payment()))
    emu.advance(minutes=4)
    assert emu.deliver_due_webhooks() == []
    emu.advance(minutes=1)
    assert sender.event_types() == [] and len(emu.deliver_due_webhooks()) == 1


def test_no_webhooks_without_a_url(govuk_pay_emulator):
    emu = govuk_pay_emulator
    emu.pay(next_url(emu.create_payment()))
    assert emu.deliveries() == [] and emu.deliver_due_webhooks() == []


def test_webhooks_over_the_control_api(govuk_pay_emulator_settings):
    emu, sender = webhook_emulator(govuk_pay_emulator_settings)
    emu.client.post("/_emulator/webhooks/options", json={"duplicate": True})
    emu.browser().get(next_url(emu.create_payment()))
    attempts = emu.client.post("/_emulator/webhooks/deliver").get_json()["attempts"]
    assert len(attempts) == 2
    deliveries = emu.client.get("/_emulator/webhooks").get_json()["deliveries"]
    assert deliveries[0]["event_type"] == "card_payment_started" and deliveries[0]["state"] == "delivered"
    assert deliveries[0]["body"]["event_type"] == "card_payment_started"


def test_background_delivery_thread(govuk_pay_emulator_settings):
    import time

    sender = RecordingSender()
    emu = new_emulator(govuk_pay_emulator_settings, webhook_sender=sender)
    emu.set_webhook_target(WEBHOOK_URL)
    emu.emulator.start_background_delivery(interval=0.05)
    try:
        emu.browser().get(next_url(emu.create_payment()))
        deadline = time.monotonic() + 5
        while not sender.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sender.event_types() == ["card_payment_started"]
    finally:
        emu.emulator.stop_background_delivery()
